/**
 * The fields every log line of a request carries (request id, tenant, plugin, session, action),
 * whatever code logs. The edge opens a context per request; code that learns more about the
 * request (the pipeline its tenant and plugin, the dispatcher its session and action) appends to
 * it. A Lambda handler holds one invocation at a time, as Powertools' appendKeys would; the local
 * server serves many requests at once and keeps each one's fields with its request scope, which
 * follows the request through callbacks and promises (src/local/request-scope.ts).
 */

export interface LogFields {
  request_id?: string;
  tenant_id?: string;
  /** author/name, or the full unique identifier when the request names one. */
  plugin_id?: string;
  plugin_unique_identifier?: string;
  session_id?: string;
  /** The plugin action, e.g. tool/invoke_tool. */
  action?: string;
}

/**
 * A Lambda execution environment serves one invocation at a time: its fields live here for the
 * invocation, set by the handler middleware, as Powertools' appendKeys would keep them.
 */
let invocation: LogFields | undefined;

export function enterInvocationLogContext(fields: LogFields): void {
  invocation = defined(fields);
}

export function leaveInvocationLogContext(): void {
  invocation = undefined;
}

/**
 * The fields of the concurrent request whose code is running, where an edge that serves many at
 * once keeps them. One asynchronous context per request, not one per concern: on Node 20 a
 * promise hook copies every AsyncLocalStorage in use onto every promise created.
 */
let concurrentRequestFields: () => LogFields | undefined = () => undefined;
let leaveRequest = <T>(work: () => T): T => work();

/** Where the edge keeps each request's fields, and how code leaves that context. */
export function useRequestLogFields(source: () => LogFields | undefined, leave: <T>(work: () => T) => T): void {
  concurrentRequestFields = source;
  leaveRequest = leave;
}

/**
 * Runs `work` outside the current request's context, for what outlives the request that set it
 * off: a plugin process a call started logs its crash and restart long after, for no request.
 */
export const outsideRequest = <T>(work: () => T): T => leaveRequest(work);

const current = (): LogFields | undefined => concurrentRequestFields() ?? invocation;

/** Adds fields to the current request's context; nothing when code runs outside a request. */
export function appendLogContext(fields: LogFields): void {
  const fieldsNow = current();
  if (fieldsNow) Object.assign(fieldsNow, defined(fields));
}

/** The fields of the request whose code is running. */
export const logContext = (): Readonly<LogFields> => current() ?? {};

function defined(fields: LogFields): LogFields {
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined && v !== "")) as LogFields;
}
