/**
 * The fields every log line of a request carries (request id, tenant, plugin, session, action),
 * kept in AsyncLocalStorage so they follow the request through callbacks and promises whatever
 * code logs. The edge opens a context per request (the local server per HTTP request, a Lambda
 * handler per invocation); code that learns more about the request (the pipeline its tenant and
 * plugin, the dispatcher its session and action) appends to it. Powertools' appendKeys would do
 * the same in Lambda, but the local daemon serves many requests at once in one process.
 */
import { AsyncLocalStorage } from "node:async_hooks";

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

const storage = new AsyncLocalStorage<LogFields>();

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

const current = (): LogFields | undefined => storage.getStore() ?? invocation;

/** Runs `fn` with a context of its own: the current fields (if any) and these. */
export const withLogContext = <T>(fields: LogFields, fn: () => T): T =>
  storage.run({ ...current(), ...defined(fields) }, fn);

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
