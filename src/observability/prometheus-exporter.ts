/**
 * The local daemon's exporter: every recording becomes a prom-client instrument in a registry of
 * its own, served as Prometheus text at GET /metrics with Node's process metrics beside them (as
 * upstream's promhttp handler serves Go's).
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { DaemonMetrics, InvocationLabels } from "../ports/metrics.js";
import { EVENT_LOOP_METRICS, monitorEventLoopDelayWhileBusy } from "./event-loop-delay.js";
import { DURATION_BUCKETS, INSTALL_BUCKETS, METRIC } from "./metric-names.js";

export interface PrometheusExporter extends DaemonMetrics {
  /** The exposition text and its content type. */
  scrape(): Promise<{ contentType: string; body: string }>;
}

export function createPrometheusExporter(options: {
  runtimeType: string;
  processMetrics?: boolean;
}): PrometheusExporter {
  const registers = [new Registry()];
  const [registry] = registers as [Registry];
  const loopDelay = options.processMetrics === false ? undefined : processMetrics(registry);
  const runtime_type = options.runtimeType;

  const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
    new Counter({ name, help, labelNames, registers });
  const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
    new Gauge({ name, help, labelNames, registers });
  const histogram = <L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    buckets = DURATION_BUCKETS,
  ) => new Histogram({ name, help, labelNames, buckets, registers });

  const http = counter(METRIC.httpRequests, "Total number of HTTP requests", [
    "method",
    "endpoint",
    "status",
    "route_group",
  ]);
  const httpDuration = histogram(METRIC.httpRequestDuration, "HTTP request latency in seconds", ["method", "endpoint"]);
  const invocations = counter(METRIC.invocations, "Total number of plugin invocations", [
    "plugin_id",
    "plugin_type",
    "runtime_type",
    "operation",
    "status",
  ]);
  const invocationDuration = histogram(METRIC.invocationDuration, "Plugin invocation latency in seconds", [
    "plugin_id",
    "plugin_type",
    "runtime_type",
    "operation",
  ]);
  const active = gauge(METRIC.invocationsActive, "Number of active plugin invocations", [
    "plugin_id",
    "plugin_type",
    "runtime_type",
  ]);
  const sessions = gauge(METRIC.activeSessions, "Total number of active sessions", []);
  const errors = counter(METRIC.invocationErrors, "Plugin invocations that ended in an error, by error type", [
    "plugin_id",
    "plugin_type",
    "operation",
    "error_type",
  ]);
  const firstChunk = histogram(METRIC.invocationFirstChunk, "Seconds from a plugin call to its first chunk", [
    "plugin_id",
    "plugin_type",
    "operation",
  ]);
  const installs = counter(METRIC.installations, "Total number of plugin installations", ["plugin_id", "status"]);
  const installDuration = histogram(
    METRIC.installationDuration,
    "Plugin installation latency in seconds",
    ["plugin_id"],
    INSTALL_BUCKETS,
  );
  const upgrades = counter(METRIC.upgrades, "Total number of plugin upgrades", ["plugin_id", "status"]);
  const upgradeDuration = histogram(
    METRIC.upgradeDuration,
    "Plugin upgrade latency in seconds",
    ["plugin_id"],
    INSTALL_BUCKETS,
  );
  const starts = counter(METRIC.starts, "Plugin processes started (first start, or again after being idle)", [
    "plugin_id",
    "runtime_type",
  ]);
  const restarts = counter(METRIC.restarts, "Total number of plugin restarts", ["plugin_id", "runtime_type"]);
  const crashLoops = counter(METRIC.crashLoops, "Times a plugin kept crashing and was stopped for a cooldown", [
    "plugin_id",
    "runtime_type",
  ]);
  const memory = gauge(METRIC.memory, "Resident memory of a local plugin process in bytes", ["plugin_id"]);
  const backwards = counter(
    METRIC.backwardsInvocations,
    "Calls from plugins back into Dify, by invoke type and outcome",
    ["type", "status"],
  );
  const backwardsDuration = histogram(METRIC.backwardsInvocationDuration, "Backwards invocation latency in seconds", [
    "type",
  ]);
  const checks = counter(METRIC.autoUpgradeChecks, "Auto-upgrade checks of a tenant, by outcome", ["status"]);
  const decisions = counter(METRIC.autoUpgradeDecisions, "Auto-upgrade decisions per plugin", ["decision", "reason"]);

  const plugin = (l: InvocationLabels) => ({ plugin_id: l.pluginId, plugin_type: l.accessType, runtime_type });
  let inFlight = 0;

  return {
    invocationStarted(l) {
      loopDelay?.busy();
      active.inc(plugin(l));
      sessions.set(++inFlight);
    },
    invocationEnded(l, end) {
      const labels = { ...plugin(l), operation: l.action };
      active.dec(plugin(l));
      sessions.set((inFlight = Math.max(0, inFlight - 1)));
      invocations.inc({ ...labels, status: end.status });
      invocationDuration.observe(labels, end.seconds);
      if (end.firstChunkSeconds !== undefined)
        firstChunk.observe(
          { plugin_id: l.pluginId, plugin_type: l.accessType, operation: l.action },
          end.firstChunkSeconds,
        );
      if (end.status === "error" || end.status === "timeout") {
        errors.inc({
          plugin_id: l.pluginId,
          plugin_type: l.accessType,
          operation: l.action,
          error_type: end.errorType ?? end.status,
        });
      }
    },
    pluginLifecycle(pluginId, event) {
      const labels = { plugin_id: pluginId, runtime_type };
      (event === "start" ? starts : event === "restart" ? restarts : crashLoops).inc(labels);
    },
    pluginMemory(pluginId, bytes) {
      if (bytes === undefined) memory.remove({ plugin_id: pluginId });
      else memory.set({ plugin_id: pluginId }, bytes);
    },
    installFinished(o) {
      const [count, duration] = o.kind === "install" ? [installs, installDuration] : [upgrades, upgradeDuration];
      count.inc({ plugin_id: o.pluginId, status: o.status });
      duration.observe({ plugin_id: o.pluginId }, o.seconds);
    },
    backwardsInvocation(o) {
      backwards.inc({ type: o.type, status: o.status });
      backwardsDuration.observe({ type: o.type }, o.seconds);
    },
    autoUpgradeCheck(o) {
      checks.inc({ status: o.status });
      if (o.started > 0) decisions.inc({ decision: "upgrade", reason: "" }, o.started);
      if (o.failedToStart > 0) decisions.inc({ decision: "start_failed", reason: "" }, o.failedToStart);
      for (const reason of o.skipped) decisions.inc({ decision: "skip", reason });
    },
    httpRequest(o) {
      // Being watched is not work: a Prometheus scraping every 15 s, or a health probe, would
      // otherwise keep the event-loop sampling on for a third of the time.
      if (o.routeGroup !== "metrics" && !o.route.startsWith("/health/")) loopDelay?.busy();
      http.inc({ method: o.method, endpoint: o.route, status: String(o.status), route_group: o.routeGroup });
      httpDuration.observe({ method: o.method, endpoint: o.route }, o.seconds);
    },
    async scrape() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}

/**
 * Node's process metrics, prom-client's defaults but for the event-loop delay, which is sampled
 * only while the daemon has work (event-loop-delay.ts). prom-client starts its own monitor with
 * the rest; its timer is set beyond any process's life and its gauges give way to those.
 */
function processMetrics(registry: Registry) {
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 2 ** 31 - 1 });
  for (const name of Object.values(EVENT_LOOP_METRICS)) registry.removeSingleMetric(name);
  return monitorEventLoopDelayWhileBusy(registry);
}
