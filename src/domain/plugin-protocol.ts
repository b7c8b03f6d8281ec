/**
 * The SDK's session protocol, as the daemon reads it (docs: layers/README.md): one JSON event
 * per line, `{event, session_id, data}`. Both runtimes (stdio subprocess and Lambda bootstrap)
 * produce exactly these lines, so this one codec serves both.
 */
import { z } from "zod";
import type { BackwardsInvocationEvent, PluginRequest, SessionOutput } from "./plugin-session.js";

const errorData = z.object({
  error_type: z.string().default("unknown"),
  message: z.string().default(""),
  args: z.record(z.string(), z.unknown()).nullish(),
});

const sessionMessage = z.discriminatedUnion("type", [
  z.object({ type: z.literal("stream"), data: z.unknown() }),
  z.object({
    type: z.literal("invoke"),
    data: z.object({
      type: z.string(),
      backwards_request_id: z.string(),
      request: z.record(z.string(), z.unknown()).default({}),
    }),
  }),
  z.object({ type: z.literal("error"), data: errorData }),
  z.object({ type: z.literal("end"), data: z.unknown().optional() }),
]);

const pluginEvent = z.discriminatedUnion("event", [
  z.object({ event: z.literal("session"), session_id: z.string(), data: sessionMessage }),
  z.object({ event: z.literal("heartbeat") }).loose(),
  z
    .object({
      event: z.literal("log"),
      data: z.object({ level: z.string().default("INFO"), message: z.string().default("") }).loose(),
    })
    .loose(),
  z.object({ event: z.literal("error"), data: z.unknown() }).loose(),
]);

export type PluginEvent = z.infer<typeof pluginEvent>;
export type SessionMessage = z.infer<typeof sessionMessage>;

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
    const parsed = pluginEvent.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
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
