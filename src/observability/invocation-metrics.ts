/**
 * Measures one plugin session while its outputs are read: in flight from the first read to the
 * end, time to the first chunk, and how it ended (upstream's success / error / timeout, canceled
 * when the caller stopped reading). A watcher of the outputs (shared/lazy-iterable.ts), not a
 * layer of its own: it sits on every chunk of every dispatch.
 */
import type { InvocationLabels, InvocationStatus } from "../ports/metrics.js";
import type { SessionOutput } from "../ports/plugin-runtime.js";
import type { Watch } from "../shared/lazy-iterable.js";
import { metrics, secondsSince } from "./metrics.js";

export interface InvocationWatch {
  /** True once the execution timeout ended the session. */
  timedOut: () => boolean;
}

export function invocationMeasure(labels: InvocationLabels, watch: InvocationWatch): Watch<SessionOutput> {
  let started: number | undefined;
  let ended = false;
  let firstChunkSeconds: number | undefined;
  let status: InvocationStatus = "canceled";
  let errorType: string | undefined;
  const end = () => {
    if (started === undefined || ended) return;
    ended = true;
    metrics.invocationEnded(labels, {
      status,
      ...(errorType !== undefined && { errorType }),
      seconds: secondsSince(started),
      ...(firstChunkSeconds !== undefined && { firstChunkSeconds }),
    });
  };
  return {
    start() {
      started = performance.now();
      metrics.invocationStarted(labels);
    },
    step(result) {
      if (result.done) {
        if (status === "canceled" && watch.timedOut()) status = "timeout";
        return end();
      }
      const output = result.value;
      if (output.type === "stream" && firstChunkSeconds === undefined)
        firstChunkSeconds = secondsSince(started ?? performance.now());
      if (output.type === "error") {
        status = "error";
        errorType = output.data.error_type || "unknown";
      }
      if (output.type === "end" && status === "canceled") status = watch.timedOut() ? "timeout" : "success";
    },
    failed(err) {
      status = "error";
      errorType = err instanceof Error && err.name !== "Error" ? err.name : "runtime_error";
      end();
    },
    stopped: end,
  };
}
