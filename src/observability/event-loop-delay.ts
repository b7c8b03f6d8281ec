/**
 * Event-loop delay for GET /metrics, sampled only while the daemon has work. prom-client's default
 * monitor samples every 10 ms for the life of the process: that woke an idle local daemon 100
 * times a second, 200 ms of CPU per 30 s with nothing to do against 70 ms for upstream's Go
 * daemon (docs/benchmarks.md, 2026-12-02). This one starts at the daemon's next piece of work and
 * stops `quietMs` after the last, so an idle daemon is not woken at all; the gauges keep
 * prom-client's names (nodejs_eventloop_lag_*), reset at each scrape as prom-client's are, and
 * read 0 for a scrape interval in which nothing was sampled.
 */
import { type IntervalHistogram, monitorEventLoopDelay } from "node:perf_hooks";
import { Gauge, type Registry } from "prom-client";

/** The names prom-client's own event-loop metrics use (lib/metrics/eventLoopLag.js, prom-client 15). */
export const EVENT_LOOP_METRICS = {
  lag: "nodejs_eventloop_lag_seconds",
  min: "nodejs_eventloop_lag_min_seconds",
  max: "nodejs_eventloop_lag_max_seconds",
  mean: "nodejs_eventloop_lag_mean_seconds",
  stddev: "nodejs_eventloop_lag_stddev_seconds",
  p50: "nodejs_eventloop_lag_p50_seconds",
  p90: "nodejs_eventloop_lag_p90_seconds",
  p99: "nodejs_eventloop_lag_p99_seconds",
} as const;

export interface EventLoopDelayOptions {
  /** Sampling interval while busy, as prom-client's eventLoopMonitoringPrecision (default 10 ms). */
  resolutionMs?: number;
  /** How long after the last piece of work sampling goes on (default 5 s). */
  quietMs?: number;
}

export interface EventLoopDelayMonitor {
  /** Work is happening: sample from now until `quietMs` after the last call. */
  busy(): void;
  /** Whether the monitor is sampling now. */
  readonly sampling: boolean;
  /** Stops sampling (the registry's gauges stay). */
  stop(): void;
}

export function monitorEventLoopDelayWhileBusy(
  registry: Registry,
  { resolutionMs = 10, quietMs = 5_000 }: EventLoopDelayOptions = {},
): EventLoopDelayMonitor {
  const histogram: IntervalHistogram = monitorEventLoopDelay({ resolution: resolutionMs });
  let sampling = false;
  let lastBusy = 0;
  let stopTimer: NodeJS.Timeout | undefined;

  const pause = () => {
    if (stopTimer) clearTimeout(stopTimer);
    stopTimer = undefined;
    histogram.disable();
    sampling = false;
  };
  // Re-armed for what is left of the quiet period rather than reset on every call, so a busy
  // daemon pays one timer per period, not one per request.
  const stopWhenQuiet = () => {
    const left = lastBusy + quietMs - performance.now();
    if (left <= 0) return pause();
    stopTimer = setTimeout(stopWhenQuiet, left);
    stopTimer.unref();
  };

  const registers = [registry];
  const gauge = (name: string, help: string, collect?: () => void) => new Gauge({ name, help, registers, collect });
  const seconds = (ns: number) => ns / 1e9;
  const statistics: Array<[name: string, help: string, read: (h: IntervalHistogram) => number]> = [
    [EVENT_LOOP_METRICS.min, "The minimum recorded event loop delay.", (h) => h.min],
    [EVENT_LOOP_METRICS.max, "The maximum recorded event loop delay.", (h) => h.max],
    [EVENT_LOOP_METRICS.mean, "The mean of the recorded event loop delays.", (h) => h.mean],
    [EVENT_LOOP_METRICS.stddev, "The standard deviation of the recorded event loop delays.", (h) => h.stddev],
    [EVENT_LOOP_METRICS.p50, "The 50th percentile of the recorded event loop delays.", (h) => h.percentile(50)],
    [EVENT_LOOP_METRICS.p90, "The 90th percentile of the recorded event loop delays.", (h) => h.percentile(90)],
    [EVENT_LOOP_METRICS.p99, "The 99th percentile of the recorded event loop delays.", (h) => h.percentile(99)],
  ];
  const fed = statistics.map(([name, help, read]) => ({ target: gauge(name, help), read }));
  // The one gauge whose collect sets them all, as prom-client's does: its own value is how long a
  // turn of the loop takes to come round at scrape time.
  const lag = gauge(EVENT_LOOP_METRICS.lag, "Lag of event loop in seconds.", () => {
    const start = process.hrtime.bigint();
    setImmediate(() => lag.set(seconds(Number(process.hrtime.bigint() - start))));
    for (const { target, read } of fed) target.set(histogram.count > 0 ? seconds(read(histogram)) : 0);
    histogram.reset();
  });

  return {
    busy() {
      lastBusy = performance.now();
      if (sampling) return;
      sampling = true;
      histogram.enable();
      stopWhenQuiet();
    },
    get sampling() {
      return sampling;
    },
    stop: pause,
  };
}
