/**
 * Measures one plugin session while its outputs are read: in flight from the first read to the
 * end, time to the first chunk, and how it ended (upstream's success / error / timeout, canceled
 * when the caller stopped reading).
 */
import type { InvocationLabels, InvocationStatus } from "../ports/metrics.js";
import type { SessionOutput } from "../ports/plugin-runtime.js";
import { metrics, secondsSince } from "./metrics.js";

export interface InvocationWatch {
  /** True once the execution timeout ended the session. */
  timedOut: () => boolean;
}

export async function* measuredInvocation(
  labels: InvocationLabels,
  outputs: AsyncIterable<SessionOutput>,
  watch: InvocationWatch,
): AsyncGenerator<SessionOutput> {
  const started = performance.now();
  let firstChunkSeconds: number | undefined;
  let status: InvocationStatus = "canceled";
  let errorType: string | undefined;
  metrics.invocationStarted(labels);
  try {
    for await (const output of outputs) {
      if (output.type === "stream" && firstChunkSeconds === undefined) firstChunkSeconds = secondsSince(started);
      if (output.type === "error") {
        status = "error";
        errorType = output.data.error_type || "unknown";
      }
      if (output.type === "end" && status === "canceled") status = watch.timedOut() ? "timeout" : "success";
      yield output;
    }
    if (status === "canceled" && watch.timedOut()) status = "timeout";
  } catch (err) {
    status = "error";
    errorType = err instanceof Error && err.name !== "Error" ? err.name : "runtime_error";
    throw err;
  } finally {
    metrics.invocationEnded(labels, {
      status,
      ...(errorType !== undefined && { errorType }),
      seconds: secondsSince(started),
      ...(firstChunkSeconds !== undefined && { firstChunkSeconds }),
    });
  }
}
