/**
 * The process's metrics recorder. Code that measures imports `metrics` and calls it; which
 * exporter receives the calls (Prometheus locally, EMF in Lambda, none in the CLI) is chosen once
 * at the edge with `useMetricsExporter`. An exporter that throws never fails the call it measures.
 */
import { type DaemonMetrics, noMetrics } from "../ports/metrics.js";

let exporter: DaemonMetrics = noMetrics;

/** Sends every later recording to `next`; returns the one it replaces. */
export function useMetricsExporter(next: DaemonMetrics): DaemonMetrics {
  const previous = exporter;
  exporter = next;
  return previous;
}

export const metricsExporter = (): DaemonMetrics => exporter;

const guarded =
  <K extends keyof DaemonMetrics>(name: K) =>
  (...args: Parameters<DaemonMetrics[K]>): void => {
    try {
      (exporter[name] as (...a: Parameters<DaemonMetrics[K]>) => void)(...args);
    } catch {
      // Measuring is never a reason for a call to fail.
    }
  };

export const metrics: DaemonMetrics = {
  invocationStarted: guarded("invocationStarted"),
  invocationEnded: guarded("invocationEnded"),
  pluginLifecycle: guarded("pluginLifecycle"),
  pluginMemory: guarded("pluginMemory"),
  installFinished: guarded("installFinished"),
  backwardsInvocation: guarded("backwardsInvocation"),
  autoUpgradeCheck: guarded("autoUpgradeCheck"),
  httpRequest: guarded("httpRequest"),
};

/** Seconds since a `performance.now()` reading. */
export const secondsSince = (startedMs: number): number => (performance.now() - startedMs) / 1000;
