/**
 * Gives memory back when the local daemon goes quiet. Under load V8 grows its young generation to
 * its maximum (32 MiB) and leaves garbage in the old one until the next full collection, so a
 * daemon that served a burst stays half again as large as at start-up; V8 shrinks the heap by
 * itself only after 8 s without allocation, and not always. Once no request has been in flight for
 * `quietMs` after one ended, this runs one memory-reducing collection: one collection (about 15 ms,
 * measured in its log line) per quiet period, none while requests keep coming.
 */
import { Session } from "node:inspector/promises";
import { logger } from "../logger.js";
import type { RequestActivity } from "../routes/request-activity.js";

/**
 * One second of quiet: long enough that requests arriving back to back never meet the collection,
 * short enough that memory is back before anyone looks. A request arriving during the collection
 * waits for it (milliseconds).
 */
export const IDLE_MEMORY_QUIET_MS = 1000;

export interface IdleMemoryOptions {
  quietMs: number;
  activity: () => RequestActivity;
  collect?: () => Promise<void>;
  now?: () => number;
}

/** Checks twice per quiet period; returns the function that stops checking. */
export function releaseMemoryWhenQuiet(options: IdleMemoryOptions): () => void {
  const check = quietCheck(options);
  const timer = setInterval(() => void check(), Math.max(1, Math.floor(options.quietMs / 2)));
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
