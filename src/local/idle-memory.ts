/**
 * Gives memory back when the local daemon goes quiet. Under load V8 leaves garbage in the old
 * generation until the next full collection (up to 40 % over what is live, with the node options
 * of scripts/build-local.mjs) and keeps the code it compiled, so a daemon that served a burst
 * stays about 10 MiB larger than before it (80-81 against 70-71 MiB). Once no request has been
 * in flight for `quietMs` (MEMORY_RELEASE_IDLE_SECONDS) after one ended, this runs one
 * memory-reducing collection (about 15 ms, in its log line), once per quiet period.
 *
 * Not sooner than tens of seconds, because the next burst pays for it, as after a start (V8
 * flushes code and feedback it sees as unused). Measured with echo calls at concurrency 1: after a
 * collection the next 800 calls cost 1.9–2.4 ms of daemon CPU each against 1.2–1.5 ms without
 * (and 1.4–1.9 ms for the 800 after them), for 10-12 MiB less resident memory while quiet (35 MiB
 * with V8's default heap sizes).
 */
import { Session } from "node:inspector/promises";
import { logger } from "../logger.js";
import type { RequestActivity } from "../routes/request-activity.js";

export interface IdleMemoryOptions {
  quietMs: number;
  activity: () => RequestActivity;
  collect?: () => Promise<void>;
  now?: () => number;
}

/** Checks every 5 s (twice per quiet period if shorter); returns the function that stops checking. */
export function releaseMemoryWhenQuiet(options: IdleMemoryOptions): () => void {
  const check = quietCheck(options);
  const timer = setInterval(() => void check(), Math.max(1, Math.min(5000, Math.floor(options.quietMs / 2))));
  timer.unref();
  return () => clearInterval(timer);
}

/** One check: collects once the daemon has been quiet for `quietMs` since the last request ended. */
export function quietCheck({
  quietMs,
  activity,
  collect = collectReducingMemory,
  now = Date.now,
}: IdleMemoryOptions): () => Promise<void> {
  let endedSeen = activity().endedRequests;
  let busyAt = now();
  let collectedFor = endedSeen;
  let collecting = false;
  return async () => {
    const { activeRequests, activeStreams, endedRequests } = activity();
    if (activeRequests > 0 || activeStreams > 0 || endedRequests !== endedSeen) {
      endedSeen = endedRequests;
      busyAt = now();
      return;
    }
    if (collecting || collectedFor === endedRequests || now() - busyAt < quietMs) return;
    collecting = true;
    collectedFor = endedRequests;
    const before = process.memoryUsage.rss();
    const started = performance.now();
    try {
      await collect();
      logger.debug(
        {
          gcMs: Math.round((performance.now() - started) * 10) / 10,
          rssBeforeMiB: Math.round(before / 1048576),
          rssAfterMiB: Math.round(process.memoryUsage.rss() / 1048576),
        },
        "daemon quiet: memory collected",
      );
    } catch (err) {
      logger.warn({ err }, "daemon quiet: memory could not be collected");
    } finally {
      collecting = false;
    }
  };
}

/**
 * A full collection that also shrinks the young generation, as V8's memory reducer does. node's
 * gc() (--expose-gc) leaves the young generation at its peak; the inspector protocol's
 * collectGarbage, asked in-process with no debugger attached, is the memory-reducing kind.
 */
export async function collectReducingMemory(): Promise<void> {
  const session = new Session();
  session.connect();
  try {
    await session.post("HeapProfiler.collectGarbage");
  } finally {
    session.disconnect();
  }
}
