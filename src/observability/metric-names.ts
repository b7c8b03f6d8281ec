/**
 * Metric names, shared by both exporters so a dashboard query reads the same locally and on AWS.
 * Where upstream has a metric (pkg/utils/metrics/metrics.go, langgenius/dify-plugin-daemon@bdb5642a)
 * the name and labels are upstream's; the others follow its style.
 */
export const METRIC = {
  // upstream's
  httpRequests: "plugin_http_requests_total",
  httpRequestDuration: "plugin_http_request_duration_seconds",
  invocations: "plugin_invocations_total",
  invocationDuration: "plugin_invocation_duration_seconds",
  invocationsActive: "plugin_invocations_active",
  activeSessions: "active_sessions_total",
  installations: "plugin_installations_total",
  installationDuration: "plugin_installation_duration_seconds",
  restarts: "plugin_restarts_total",
  // this daemon's
  invocationErrors: "plugin_invocation_errors_total",
  invocationFirstChunk: "plugin_invocation_first_chunk_seconds",
  upgrades: "plugin_upgrades_total",
  upgradeDuration: "plugin_upgrade_duration_seconds",
  starts: "plugin_starts_total",
  crashLoops: "plugin_crash_loops_total",
  memory: "plugin_memory_bytes",
  backwardsInvocations: "plugin_backwards_invocations_total",
  backwardsInvocationDuration: "plugin_backwards_invocation_duration_seconds",
  autoUpgradeChecks: "plugin_auto_upgrade_checks_total",
  autoUpgradeDecisions: "plugin_auto_upgrade_decisions_total",
} as const;

/** Seconds; upstream's DefBuckets extended to the 600 s execution timeout (model calls stream for minutes). */
export const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

/** Installs run pip/uv: seconds to many minutes. */
export const INSTALL_BUCKETS = [1, 2.5, 5, 10, 30, 60, 120, 300, 600, 900];
