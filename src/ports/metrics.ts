/**
 * What the daemon measures, in its own words. Services and adapters record through this port
 * (src/observability/metrics.ts holds the process's recorder); exporters implement it: Prometheus
 * text at the local daemon's /metrics, CloudWatch EMF from the Lambda handlers. Labels are
 * bounded: a plugin is its plugin id (author/name, no version), never a tenant or a session.
 */

/** One plugin call, as the dispatcher sees it. */
export interface InvocationLabels {
  /** author/name */
  pluginId: string;
  /** Access type: tool, model, endpoint, agent_strategy, ... */
  accessType: string;
  /** Access action: invoke_tool, invoke_llm, ... */
  action: string;
}

/** How a call ended: upstream's success, error and timeout, and canceled when the caller left first. */
export type InvocationStatus = "success" | "error" | "timeout" | "canceled";

export interface InvocationEnd {
  status: InvocationStatus;
  /** The plugin's error type (e.g. ValueError, PluginInvokeError) when status is error. */
  errorType?: string;
  seconds: number;
  /** Seconds from the call to the plugin's first chunk; undefined when none came. */
  firstChunkSeconds?: number;
}

export type PluginLifecycleEvent = "start" | "restart" | "crash_loop";

export interface InstallOutcome {
  kind: "install" | "upgrade";
  pluginId: string;
  status: "success" | "failed";
  seconds: number;
}

export interface BackwardsInvocationOutcome {
  /** The invoke type: tool, llm, app, storage, ... */
  type: string;
  status: "success" | "error";
  seconds: number;
}

/** One tenant's auto-upgrade check: its outcome and what it decided per plugin. */
export interface AutoUpgradeCheckOutcome {
  status: "ok" | "skipped" | "failed";
  started: number;
  failedToStart: number;
  /** Skip reasons (one entry per skipped plugin). */
  skipped: string[];
}

export interface HttpRequestOutcome {
  /** management, dispatch, public-endpoint, backwards-invocation, health, metrics or none (no route). */
  routeGroup: string;
  /** The route's pattern (upstream's gin FullPath), empty when no route matched. */
  route: string;
  method: string;
  status: number;
  seconds: number;
}

export interface DaemonMetrics {
  invocationStarted(labels: InvocationLabels): void;
  invocationEnded(labels: InvocationLabels, end: InvocationEnd): void;
  pluginLifecycle(pluginId: string, event: PluginLifecycleEvent): void;
  /** Resident memory of a local plugin process; undefined when it stopped. */
  pluginMemory(pluginId: string, bytes: number | undefined): void;
  installFinished(outcome: InstallOutcome): void;
  backwardsInvocation(outcome: BackwardsInvocationOutcome): void;
  autoUpgradeCheck(outcome: AutoUpgradeCheckOutcome): void;
  httpRequest(outcome: HttpRequestOutcome): void;
}

/** Records nothing: the default until an exporter is chosen, and for tools like the CLI. */
export const noMetrics: DaemonMetrics = {
  invocationStarted: () => undefined,
  invocationEnded: () => undefined,
  pluginLifecycle: () => undefined,
  pluginMemory: () => undefined,
  installFinished: () => undefined,
  backwardsInvocation: () => undefined,
  autoUpgradeCheck: () => undefined,
  httpRequest: () => undefined,
};
