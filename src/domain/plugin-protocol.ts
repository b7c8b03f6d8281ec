/**
 * The SDK's session protocol, as the daemon reads it (docs: layers/README.md): one JSON event
 * per line, `{event, session_id, data}`. Both runtimes (stdio subprocess and Lambda bootstrap)
 * produce exactly these lines, so this one codec serves both.
 */
import type { BackwardsInvocationEvent, PluginRequest, SessionOutput } from "./plugin-session.js";

export type SessionMessage =
  | { type: "stream"; data: unknown }
  | { type: "invoke"; data: { type: string; backwards_request_id: string; request: Record<string, unknown> } }
  | { type: "error"; data: { error_type: string; message: string; args?: Record<string, unknown> | null } }
  | { type: "end"; data?: unknown };

export type PluginEvent =
  | { event: "session"; session_id: string; data: SessionMessage }
  | { event: "heartbeat"; [key: string]: unknown }
  | { event: "log"; data: { level: string; message: string; [key: string]: unknown }; [key: string]: unknown }
  | { event: "error"; data: unknown; [key: string]: unknown };

/*
 * The checks below are the protocol's schema, written out: every line of every plugin passes
 * here, and a schema library costs more per event than the JSON parse. What is accepted and what
 * comes out is exactly what this zod schema gives (test/unit/plugin-protocol.test.ts holds it and
 * compares both on generated events):
 *   session   {event, session_id: string, data: message}               (other keys dropped)
 *   message   {type: "stream", data}  {type: "end", data?}  {type: "error", data: error}
 *             {type: "invoke", data: {type: string, backwards_request_id: string, request: record = {}}}
 *   error     {error_type: string = "unknown", message: string = "", args?: record | null}
 *   heartbeat {event, ...}   log {event, data: {level: string = "INFO", message: string = "", ...}, ...}
 *   error     {event, data, ...}                                        (`...`: other keys kept)
 * A key given as null is not a missing key (only `args` may be null); `data` must be present
 * where it has no default; records and objects are JSON objects, never arrays.
 */
type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** A string, its default when absent, or undefined when it is anything else. */
const text = (value: unknown, fallback: string): string | undefined =>
  value === undefined ? fallback : typeof value === "string" ? value : undefined;

/** A JSON object copied the way a schema library copies records and loose objects: without `__proto__`. */
function copied(value: Json, skip?: readonly string[]): Json {
  const out: Json = {};
  for (const key of Object.keys(value)) {
    if (key === "__proto__" || skip?.includes(key)) continue;
    out[key] = value[key];
  }
  return out;
}

function errorData(value: unknown): (SessionMessage & { type: "error" })["data"] | undefined {
  if (!isObject(value)) return undefined;
  const errorType = text(value.error_type, "unknown");
  const message = text(value.message, "");
  if (errorType === undefined || message === undefined) return undefined;
  const { args } = value;
  if (args === undefined)
    return "args" in value ? { error_type: errorType, message, args } : { error_type: errorType, message };
  if (args === null) return { error_type: errorType, message, args: null };
  return isObject(args) ? { error_type: errorType, message, args: copied(args) } : undefined;
}

function sessionMessage(value: unknown): SessionMessage | undefined {
  if (!isObject(value)) return undefined;
  switch (value.type) {
    case "stream":
      return "data" in value ? { type: "stream", data: value.data } : undefined;
    case "end":
      return "data" in value ? { type: "end", data: value.data } : { type: "end" };
    case "error": {
      const data = errorData(value.data);
      return data && { type: "error", data };
    }
    case "invoke": {
      const data = value.data;
      if (!isObject(data) || typeof data.type !== "string" || typeof data.backwards_request_id !== "string")
        return undefined;
      const request = data.request === undefined ? {} : isObject(data.request) ? copied(data.request) : undefined;
      if (!request) return undefined;
      return { type: "invoke", data: { type: data.type, backwards_request_id: data.backwards_request_id, request } };
    }
    default:
      return undefined;
  }
}

/** One parsed JSON value as a protocol event, or undefined when it is none. */
function pluginEvent(value: unknown): PluginEvent | undefined {
  if (!isObject(value)) return undefined;
  switch (value.event) {
    case "session": {
      if (typeof value.session_id !== "string") return undefined;
      const data = sessionMessage(value.data);
      return data && { event: "session", session_id: value.session_id, data };
    }
    case "heartbeat":
      return { ...copied(value), event: "heartbeat" };
    case "log": {
      const data = value.data;
      if (!isObject(data)) return undefined;
      const level = text(data.level, "INFO");
      const message = text(data.message, "");
      if (level === undefined || message === undefined) return undefined;
      return {
        ...copied(value),
        event: "log",
        data: { level, message, ...copied(data, ["level", "message"]) },
      };
    }
    case "error":
      return "data" in value ? { ...copied(value), event: "error", data: value.data } : undefined;
    default:
      return undefined;
  }
}

/**
 * Parses one output line into protocol events. Lines that are not protocol events (the manifest
 * the SDK prints at start, stray prints) are ignored, as upstream does. Under gevent the SDK
 * writes an event and its separator separately, so two events can share a line: each JSON
 * object on the line is read on its own.
 */
export function parsePluginEvents(line: string): PluginEvent[] {
  // The usual case, one event on the line, needs no scan.
  const single = parseEvent(line);
  if (single) return [single];
  const events: PluginEvent[] = [];
  for (const text of jsonObjects(line)) {
    const event = parseEvent(text);
    if (event) events.push(event);
  }
  return events;
}

function parseEvent(text: string): PluginEvent | undefined {
  if (!text.trimStart().startsWith("{")) return undefined;
  try {
    return pluginEvent(JSON.parse(text));
  } catch {
    return undefined;
  }
}

/** One event per line (the Lambda bootstrap already splits shared lines). */
export function parsePluginLine(line: string): PluginEvent | undefined {
  return parsePluginEvents(line)[0];
}

/** Splits `{..}{..}` into top-level JSON object texts (string-aware brace matching). */
function* jsonObjects(line: string): Generator<string> {
  let depth = 0;
  let start = -1;
  let inString = false;
  let escaped = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (c === "\\") escaped = true;
      else if (c === '"') inString = false;
    } else if (c === '"') {
      inString = depth > 0;
    } else if (c === "{") {
      if (depth++ === 0) start = i;
    } else if (c === "}" && depth > 0 && --depth === 0) {
      yield line.slice(start, i + 1);
    }
  }
}

export function toSessionOutput(message: SessionMessage): SessionOutput | undefined {
  switch (message.type) {
    case "stream":
      return { type: "stream", data: message.data };
    case "error":
      return {
        type: "error",
        data: { error_type: message.data.error_type, message: message.data.message, args: message.data.args ?? null },
      };
    case "end":
      return { type: "end" };
    case "invoke":
      return undefined;
  }
}

/** The stdin line answering a backwards invocation. */
export function backwardsResponseLine(request: PluginRequest, event: BackwardsInvocationEvent): string {
  return `${JSON.stringify({
    session_id: request.session_id,
    event: "backwards_response",
    conversation_id: request.conversation_id ?? null,
    message_id: request.message_id ?? null,
    app_id: request.app_id ?? null,
    endpoint_id: request.endpoint_id ?? null,
    context: request.context ?? null,
    data: event,
  })}\n`;
}

export const runtimeError = (message: string, args: Record<string, unknown> | null = null): SessionOutput => ({
  type: "error",
  data: { error_type: "PluginRuntimeError", message, args },
});
