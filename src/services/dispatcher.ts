/**
 * Runs one dispatch: builds the plugin request, invokes the plugin runtime, and frames its
 * output the way upstream streams it to Dify: `data: <envelope>\n\n` per chunk, a plugin error
 * as one last chunk with code -500 (the plugin's own error double-encoded inside
 * PluginInvokeError), and "killed by timeout" when the plugin runs past the execution timeout.
 */
import { randomUUID } from "node:crypto";
import type { PluginAction } from "../domain/dispatch-actions.js";
import { errorEnvelope, sseChunk, successEnvelope } from "../domain/envelope.js";
import { DaemonError, internalError } from "../domain/errors.js";
import { type PluginUniqueIdentifier, pluginIdOf } from "../domain/identifier.js";
import { invocationMeasure } from "../observability/invocation-metrics.js";
import { appendLogContext } from "../observability/log-context.js";
import type {
  BackwardsInvocationHandler,
  PluginRequest,
  PluginRuntime,
  SessionOutput,
} from "../ports/plugin-runtime.js";
import { finished, watched } from "../shared/lazy-iterable.js";

export interface DispatchInput {
  tenantId: string;
  uniqueIdentifier: PluginUniqueIdentifier;
  action: PluginAction;
  userId: string;
  data: Record<string, unknown>;
  conversationId?: string | null;
  messageId?: string | null;
  appId?: string | null;
  endpointId?: string | null;
  context?: Record<string, unknown> | null;
}

export type BackwardsFactory = (input: DispatchInput, sessionId: string) => BackwardsInvocationHandler;

export class Dispatcher {
  constructor(
    private readonly runtime: PluginRuntime,
    private readonly timeoutSeconds: number,
    private readonly backwards: BackwardsFactory,
  ) {}

  /** The plugin's raw session outputs (for callers that frame them differently, like endpoints). */
  run(input: DispatchInput, signal?: AbortSignal) {
    const sessionId = randomUUID();
    const request: PluginRequest = {
      session_id: sessionId,
      event: "request",
      conversation_id: input.conversationId ?? null,
      message_id: input.messageId ?? null,
      app_id: input.appId ?? null,
      endpoint_id: input.endpointId ?? null,
      context: input.context ?? null,
      data: { ...input.data, user_id: input.userId, type: input.action.type, action: input.action.action },
    };
    // A plain timer, cleared when the session ends: AbortSignal.timeout would keep every
    // session's listeners alive for the whole execution timeout.
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort(SESSION_OVER);
    }, this.timeoutSeconds * 1000);
    const onAbort = () => controller.abort(SESSION_OVER);
    signal?.addEventListener("abort", onAbort, { once: true });
    const labels = {
      pluginId: pluginIdOf(input.uniqueIdentifier),
      accessType: input.action.type,
      action: input.action.action,
    };
    appendLogContext({
      tenant_id: input.tenantId,
      plugin_id: labels.pluginId,
      plugin_unique_identifier: input.uniqueIdentifier,
      session_id: sessionId,
      action: `${labels.accessType}/${labels.action}`,
    });
    const invocation = this.runtime.invoke(input.uniqueIdentifier, request, {
      signal: controller.signal,
      tenantId: input.tenantId,
      backwards: this.backwards(input, sessionId),
    });
    let open = true;
    const close = () => {
      if (!open) return;
      open = false;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      // Ends the plugin session too when the caller stopped reading early (client gone).
      controller.abort(SESSION_OVER);
    };
    // Measured first, then closed: the metrics see the end before the session's cleanup runs.
    const outputs = watched(invocation, invocationMeasure(labels, { timedOut: () => timedOut }), {
      step: (result) => {
        if (result.done) close();
      },
      failed: close,
      stopped: close,
    });
    return { outputs, timedOut: () => timedOut };
  }

  /** The SSE body of a dispatch response (one callback per chunk on its way, no generator). */
  stream(input: DispatchInput, signal?: AbortSignal): AsyncIterable<string> {
    const { outputs, timedOut } = this.run(input, signal);
    return { [Symbol.asyncIterator]: () => new SseFrames(outputs[Symbol.asyncIterator](), timedOut) };
  }
}

/**
 * The reason a session's signal aborts with: a plain value, because `abort()` without one builds
 * a DOMException (with its stack) for every session, and nothing reads it.
 */
const SESSION_OVER = Object.freeze({ name: "SessionOver", message: "the plugin session is over" });

const frame = (value: string): IteratorResult<string> => ({ done: false, value });

/**
 * Session outputs framed as SSE chunks: each stream output a success envelope; the plugin's error
 * a last chunk with PluginInvokeError (its own error double-encoded inside); the end of the
 * session (or of the outputs) the end of the body, after "killed by timeout" when the execution
 * timeout ended it; a failure of the runtime one last internal-error chunk.
 */
class SseFrames implements AsyncIterator<string> {
  private done = false;
  /** The plugin's error went out as the last chunk: the outputs are closed at the next read. */
  private closeNext = false;

  constructor(
    private readonly outputs: AsyncIterator<SessionOutput>,
    private readonly timedOut: () => boolean,
  ) {}

  next(): Promise<IteratorResult<string>> {
    if (this.closeNext) {
      this.closeNext = false;
      return this.close().then(() => finished<string>());
    }
    if (this.done) return Promise.resolve(finished<string>());
    return this.outputs.next().then(
      (result) => this.framed(result),
      (err: unknown) =>
        this.last(sseChunk(errorEnvelope(internalError(err instanceof Error ? err.message : String(err))))),
    );
  }

  async return(): Promise<IteratorResult<string>> {
    this.done = true;
    this.closeNext = false;
    await this.close();
    return finished<string>();
  }

  private framed(result: IteratorResult<SessionOutput>): IteratorResult<string> | Promise<IteratorResult<string>> {
    if (this.done) return finished<string>();
    if (result.done) return this.ending();
    const output = result.value;
    if (output.type === "stream") return frame(sseChunk(successEnvelope(output.data)));
    if (output.type === "error") {
      const inner = JSON.stringify({
        message: output.data.message,
        error_type: output.data.error_type,
        args: output.data.args ?? null,
      });
      this.closeNext = true;
      return this.last(sseChunk(errorEnvelope(new DaemonError("PluginInvokeError", inner))));
    }
    // The session's end: the outputs are closed (the runtime's cleanup done) before the body ends.
    this.done = true;
    return this.close().then(() => this.ending());
  }

  /** The end of the body: "killed by timeout" first if the execution timeout ended the session. */
  private ending(): IteratorResult<string> {
    this.done = true;
    return this.timedOut() ? frame(sseChunk(errorEnvelope(internalError("killed by timeout")))) : finished<string>();
  }

  private last(chunk: string): IteratorResult<string> {
    this.done = true;
    return frame(chunk);
  }

  /** Stops reading the outputs, which ends the session and its timer; settles once they are closed. */
  private async close(): Promise<void> {
    await this.outputs.return?.()?.catch(() => undefined);
  }
}
