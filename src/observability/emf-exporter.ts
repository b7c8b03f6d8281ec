/**
 * The Lambda handlers' exporter: each recording is written at once as a CloudWatch Embedded
 * Metric Format line (Powertools Metrics) under the same names as the Prometheus exporter.
 * Dimension sets: always one without the plugin, for totals and alarms, and one with plugin_id,
 * which stays bounded (plugins installed, no version, never a tenant). On AWS the in-flight count
 * and the supervisor's metrics have no equivalent here: Lambda's ConcurrentExecutions and the
 * plugin functions' own metrics stand in for them (the dashboard shows those).
 */
import { Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";
import type { MetricUnit as Unit } from "@aws-lambda-powertools/metrics/types";
import type { DaemonMetrics } from "../ports/metrics.js";
import { METRIC } from "./metric-names.js";

type Dimensions = Record<string, string>;
type Value = [name: string, unit: Unit, value: number];

export const DEFAULT_NAMESPACE = "DifyPluginDaemon";

export interface EmfExporterOptions {
  namespace?: string;
  serviceName?: string;
}

export interface EmfExporter extends DaemonMetrics {
  /** The instance that records cold starts (Powertools' ColdStart metric) for the invocation's function. */
  readonly powertools: Metrics;
}

export function createEmfExporter(options: EmfExporterOptions = {}): EmfExporter {
  const namespace = options.namespace ?? process.env.POWERTOOLS_METRICS_NAMESPACE ?? DEFAULT_NAMESPACE;
  const serviceName = options.serviceName ?? process.env.POWERTOOLS_SERVICE_NAME ?? "dify-plugin-daemon";

  // One line per dimension set: Powertools refuses a key shared by two sets of one line.
  const emit = (sets: Dimensions[], values: Value[]) => {
    for (const set of sets) {
      const line = new Metrics({ namespace, serviceName });
      line.addDimensions(set);
      for (const [name, unit, value] of values) line.addMetric(name, unit, value);
      line.publishStoredMetrics();
    }
  };
  const count = (name: string, n = 1): Value => [name, MetricUnit.Count, n];
  const seconds = (name: string, s: number): Value => [name, MetricUnit.Seconds, s];

  return {
    powertools: new Metrics({ namespace, serviceName }),
    invocationStarted: () => undefined,
    invocationEnded(l, end) {
      const values = [count(METRIC.invocations), seconds(METRIC.invocationDuration, end.seconds)];
      if (end.firstChunkSeconds !== undefined) values.push(seconds(METRIC.invocationFirstChunk, end.firstChunkSeconds));
      emit([{}, { plugin_id: l.pluginId }, { plugin_id: l.pluginId, operation: l.action }], values);
      if (end.status === "error" || end.status === "timeout") {
        emit(
          [{}, { plugin_id: l.pluginId }, { error_type: end.errorType ?? end.status }],
          [count(METRIC.invocationErrors)],
        );
      }
    },
    pluginLifecycle(pluginId, event) {
      const name = event === "start" ? METRIC.starts : event === "restart" ? METRIC.restarts : METRIC.crashLoops;
      emit([{}, { plugin_id: pluginId }], [count(name)]);
    },
    pluginMemory: () => undefined,
    installFinished(o) {
      const [total, duration] =
        o.kind === "install"
          ? [METRIC.installations, METRIC.installationDuration]
          : [METRIC.upgrades, METRIC.upgradeDuration];
      emit(
        [{ status: o.status }, { plugin_id: o.pluginId, status: o.status }],
        [count(total), seconds(duration, o.seconds)],
      );
    },
    backwardsInvocation(o) {
      emit(
        [{ status: o.status }, { type: o.type, status: o.status }],
        [count(METRIC.backwardsInvocations), seconds(METRIC.backwardsInvocationDuration, o.seconds)],
      );
    },
    autoUpgradeCheck(o) {
      emit([{ status: o.status }], [count(METRIC.autoUpgradeChecks)]);
      if (o.started > 0) emit([{ decision: "upgrade" }], [count(METRIC.autoUpgradeDecisions, o.started)]);
      if (o.failedToStart > 0)
        emit([{ decision: "start_failed" }], [count(METRIC.autoUpgradeDecisions, o.failedToStart)]);
      if (o.skipped.length > 0) emit([{ decision: "skip" }], [count(METRIC.autoUpgradeDecisions, o.skipped.length)]);
    },
    httpRequest(o) {
      emit(
        [{ route_group: o.routeGroup }, { route_group: o.routeGroup, status_class: `${Math.floor(o.status / 100)}xx` }],
        [count(METRIC.httpRequests), seconds(METRIC.httpRequestDuration, o.seconds)],
      );
    },
  };
}
