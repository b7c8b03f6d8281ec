/**
 * Polling-based LLM calls (`dispatch/model/polling/start` and `/check`): one plugin session whose
 * single result is the answer, not a stream. Mirrors upstream's io_tunnel.StartPolling /
 * CheckPolling and model_entities.ModelPollingResult (internal/core/io_tunnel/model_polling.go,
 * pkg/entities/model_entities/polling.go, langgenius/dify-plugin-daemon@bdb5642a): every chunk
 * the plugin sends is decoded and validated as a polling result, the last one is the answer, and
 * anything else fails the call with a PluginInvokeError.
 */
import { z } from "zod";
import { DaemonError, internalError } from "../domain/errors.js";
import type { Dispatcher, DispatchInput } from "./dispatcher.js";

const optionalInt = z.number().int().nullish();

const pollingResult = z
  .object({
    status: z.enum(["running", "succeeded", "failed"]),
    plugin_state: z.record(z.string(), z.unknown()).nullish(),
    result: z.unknown().optional(),
    error: z.string().nullish(),
    next_check_after_seconds: optionalInt,
    expires_after_seconds: optionalInt,
    max_attempts: optionalInt,
  })
  .superRefine((r, ctx) => {
    if (r.status === "running" && Object.keys(r.plugin_state ?? {}).length === 0) {
      ctx.addIssue({ code: "custom", path: ["plugin_state"], message: "is required when status is running" });
    }
    if (r.status === "succeeded" && (r.result === undefined || r.result === null)) {
      ctx.addIssue({ code: "custom", path: ["result"], message: "is required when status is succeeded" });
    }
    if (r.status === "failed" && !r.error?.trim()) {
      ctx.addIssue({ code: "custom", path: ["error"], message: "is required when status is failed" });
    }
  });

export type PollingResult = z.infer<typeof pollingResult>;

/** Upstream's failure: HTTP 500 with the plugin's error (or the decoding failure) inside PluginInvokeError. */
const invokeError = (inner: Record<string, unknown>) =>
  new DaemonError("PluginInvokeError", JSON.stringify(inner)).withStatus(500);

/** Runs one polling action and answers the plugin's last polling result. */
export async function pollOnce(dispatcher: Dispatcher, input: DispatchInput): Promise<PollingResult> {
  const { outputs, timedOut } = dispatcher.run(input);
  let answer: PollingResult | undefined;
  for await (const output of outputs) {
    if (output.type === "end") break;
    if (output.type === "error") {
      throw invokeError({
        message: output.data.message,
        error_type: output.data.error_type,
        args: output.data.args ?? null,
      });
    }
    answer = decode(output.data);
  }
  if (timedOut()) throw internalError("killed by timeout").withStatus(500);
  if (!answer)
    throw invokeError({ message: "no polling result received from plugin", error_type: "unknown", args: null });
  return answer;
}

/** A chunk as Go re-encodes ModelPollingResult: unknown fields and empty optional ones dropped. */
function decode(data: unknown): PollingResult {
  const parsed = pollingResult.safeParse(data);
  if (!parsed.success) {
    const detail = parsed.error.issues.map((i) => `${i.path.join(".") || "result"}: ${i.message}`).join("; ");
    throw invokeError({ error_type: "unmarshal_error", message: `unmarshal json failed: ${detail}` });
  }
  const r = parsed.data;
  const raw = data as Record<string, unknown>;
  return {
    status: r.status,
    ...(r.plugin_state && Object.keys(r.plugin_state).length ? { plugin_state: r.plugin_state } : {}),
    // json.RawMessage keeps an explicit null; only an absent result is left out.
    ...("result" in raw ? { result: r.result ?? null } : {}),
    ...(r.error ? { error: r.error } : {}),
    ...(r.next_check_after_seconds != null ? { next_check_after_seconds: r.next_check_after_seconds } : {}),
    ...(r.expires_after_seconds != null ? { expires_after_seconds: r.expires_after_seconds } : {}),
    ...(r.max_attempts != null ? { max_attempts: r.max_attempts } : {}),
  };
}
