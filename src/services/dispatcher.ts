/**
 * Runs one dispatch: builds the plugin request, invokes the plugin runtime, and frames its
 * output the way upstream streams it to Dify: `data: <envelope>\n\n` per chunk, a plugin error
 * as one last chunk with code -500 (the plugin's own error double-encoded inside
 * PluginInvokeError), and "killed by timeout" when the plugin runs past the execution timeout.
 */
import { v4 as uuidv4 } from "uuid";
import type { PluginAction } from "../domain/dispatch-actions.js";
import { errorEnvelope, sseChunk, successEnvelope } from "../domain/envelope.js";
import { DaemonError, internalError } from "../domain/errors.js";
import { type PluginUniqueIdentifier, pluginIdOf } from "../domain/identifier.js";
import { measuredInvocation } from "../observability/invocation-metrics.js";
import { appendLogContext } from "../observability/log-context.js";
import type { BackwardsInvocationHandler, PluginRequest, PluginRuntime } from "../ports/plugin-runtime.js";

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
    const sessionId = uuidv4();
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
      controller.abort();
    }, this.timeoutSeconds * 1000);
    const onAbort = () => controller.abort();
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
    const source = measuredInvocation(labels, invocation, { timedOut: () => timedOut });
    async function* outputs() {
      try {
        yield* source;
      } finally {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        // Ends the plugin session too when the caller stopped reading early (client gone).
        controller.abort();
      }
    }
    return { outputs: outputs(), timedOut: () => timedOut };
  }

  /** The SSE body of a dispatch response. */
  async *stream(input: DispatchInput, signal?: AbortSignal): AsyncGenerator<string> {
    const { outputs, timedOut } = this.run(input, signal);
    try {
      for await (const output of outputs) {
        if (output.type === "stream") {
          yield sseChunk(successEnvelope(output.data));
        } else if (output.type === "error") {
          const inner = JSON.stringify({
            message: output.data.message,
            error_type: output.data.error_type,
            args: output.data.args ?? null,
          });
          yield sseChunk(errorEnvelope(new DaemonError("PluginInvokeError", inner)));
          return;
        } else {
          break;
        }
      }
      if (timedOut()) yield sseChunk(errorEnvelope(internalError("killed by timeout")));
    } catch (err) {
      yield sseChunk(errorEnvelope(internalError(err instanceof Error ? err.message : String(err))));
    }
  }
}
