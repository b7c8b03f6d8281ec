/**
 * Reads a plugin session out of an InvokeWithResponseStream answer. The plugin bootstrap writes
 * the session's events as NDJSON; Lambda delivers those bytes as `PayloadChunk` events cut
 * anywhere (mid-line, mid-character), then one `InvokeComplete` that carries the function's
 * error, if any. The result always ends with exactly one `end`.
 */
import type { InvokeWithResponseStreamResponseEvent } from "@aws-sdk/client-lambda";
import { type PluginEvent, parsePluginEvents, runtimeError, toSessionOutput } from "../../domain/plugin-protocol.js";
import { logger } from "../../logger.js";
import type { SessionOutput } from "../../ports/plugin-runtime.js";

/** A line longer than this (characters) is not a protocol event but a runaway plugin (upstream: 5 MiB). */
export const MAX_LINE_CHARS = 16 * 1024 * 1024;

export interface SessionStreamContext {
  sessionId: string;
  requestId: string | undefined;
  signal: AbortSignal;
}

const failed = (message: string, requestId: string | undefined, extra: Record<string, unknown> = {}): SessionOutput =>
  runtimeError(`Plugin runtime request failed: ${message}`, { request_id: requestId ?? null, ...extra });

/** Splits bytes into text lines, keeping a partial line (and a partial UTF-8 character) for the next chunk. */
export class LineSplitter {
  private readonly decoder = new TextDecoder("utf-8");
  private pending = "";

  push(bytes: Uint8Array): string[] {
    this.pending += this.decoder.decode(bytes, { stream: true });
    const lines = this.pending.split("\n");
    this.pending = lines.pop() ?? "";
    return lines;
  }

  /** The last, unterminated line. */
  finish(): string[] {
    const rest = this.pending + this.decoder.decode();
    this.pending = "";
    return rest.trim() === "" ? [] : [rest];
  }

  get pendingLength(): number {
    return this.pending.length;
  }
}

/** Lambda's error document, when a function failed before streaming anything of its own. */
function lambdaErrorOf(line: string): string | undefined {
  if (!line.includes("errorType") && !line.includes("errorMessage")) return undefined;
  try {
    const json = JSON.parse(line) as Record<string, unknown>;
    if (typeof json.errorType !== "string" && typeof json.errorMessage !== "string") return undefined;
    if ("event" in json) return undefined;
    return [json.errorType, json.errorMessage].filter((s) => typeof s === "string" && s).join(": ");
  } catch {
    return undefined;
  }
}

export async function* sessionOutputs(
  events: AsyncIterable<InvokeWithResponseStreamResponseEvent> | undefined,
  context: SessionStreamContext,
): AsyncGenerator<SessionOutput> {
  const { sessionId, requestId, signal } = context;
  const lines = new LineSplitter();
  let ended = false;
  let produced = false;

  /** Turns one line into what to forward; remembers whether the session ended. */
  const read = (line: string): SessionOutput[] => {
    if (ended || line.trim() === "") return [];
    const events = parsePluginEvents(line);
    if (events.length === 0) {
      const lambdaError = lambdaErrorOf(line);
      if (lambdaError) {
        ended = true;
        return [failed(lambdaError, requestId), { type: "end" }];
      }
      logger.debug({ sessionId, line: line.slice(0, 200) }, "ignoring a non-protocol line from a plugin function");
      return [];
    }
    return events.flatMap(forward);
  };

  const forward = (event: PluginEvent): SessionOutput[] => {
    if (ended) return [];
    if (event.event === "log") {
      logger.info({ sessionId, plugin_log: event.data }, "plugin log");
      return [];
    }
    if (event.event !== "session") return [];
    if (event.session_id !== sessionId) {
      logger.warn({ sessionId, other: event.session_id }, "ignoring output of another session");
      return [];
    }
    const output = toSessionOutput(event.data);
    if (!output) return []; // `invoke`: the bootstrap calls the daemon over HTTP instead
    produced = true;
    if (output.type === "end") ended = true;
    return [output];
  };

  const iterator = events?.[Symbol.asyncIterator]();
  const aborted = new Promise<"aborted">((resolve) => {
    if (signal.aborted) resolve("aborted");
    else signal.addEventListener("abort", () => resolve("aborted"), { once: true });
  });

  let drained = false;
  try {
    while (iterator) {
      const next = await Promise.race([iterator.next(), aborted]);
      if (next === "aborted") break;
      if (next.done) {
        drained = true;
        break;
      }
      const event = next.value;
      if (event.PayloadChunk?.Payload) {
        for (const line of lines.push(event.PayloadChunk.Payload)) yield* read(line);
        if (!ended && lines.pendingLength > MAX_LINE_CHARS) {
          ended = true;
          yield failed(`plugin output line longer than ${MAX_LINE_CHARS} characters`, requestId);
          yield { type: "end" };
        }
      } else if (event.InvokeComplete) {
        for (const line of lines.finish()) yield* read(line);
        const { ErrorCode, ErrorDetails } = event.InvokeComplete;
        if (ErrorCode && !ended) {
          ended = true;
          yield failed(`${ErrorCode}: ${ErrorDetails ?? ""}`.replace(/: $/, ""), requestId);
          yield { type: "end" };
        } else if (ErrorCode) {
          logger.warn(
            { sessionId, requestId, ErrorCode, ErrorDetails },
            "plugin function failed after its session ended",
          );
        }
      }
    }
  } catch (err) {
    if (!signal.aborted && !ended) {
      ended = true;
      yield failed(`response stream interrupted: ${(err as Error).message}`, requestId);
      yield { type: "end" };
    }
  } finally {
    // Aborted, or the caller stopped after `end`: stop reading so the connection is released.
    if (!drained) void iterator?.return?.()?.catch(() => undefined);
  }

  if (!signal.aborted) for (const line of lines.finish()) yield* read(line);
  if (ended) return;
  if (!produced && !signal.aborted) yield failed("no valid session response", requestId);
  // Upstream synthesises the end a plugin did not send, so callers always see one.
  yield { type: "end" };
}
