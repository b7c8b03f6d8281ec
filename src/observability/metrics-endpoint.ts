/**
 * The local daemon's GET /metrics: Prometheus text of the process's metrics. As upstream
 * (internal/server/http_server.go, langgenius/dify-plugin-daemon@bdb5642a) the route exists only
 * when PROMETHEUS_ENABLED is on (the default) and needs no key, so a Prometheus scrape config
 * works unchanged; the labels carry plugin ids and routes, never tenants, keys or payloads. Turn
 * it off, or keep port 5002 off untrusted networks, where plugin names are not for everyone.
 */
import type { ServerResponse } from "node:http";
import { useMetricsExporter } from "./metrics.js";
import { createPrometheusExporter, type PrometheusExporter } from "./prometheus-exporter.js";

let prometheus: PrometheusExporter | undefined;

/** Starts recording into Prometheus instruments (once per process) when enabled. */
export function enablePrometheus(options: { enabled: boolean; runtimeType?: string }): PrometheusExporter | undefined {
  if (!options.enabled) return undefined;
  if (!prometheus) {
    prometheus = createPrometheusExporter({ runtimeType: options.runtimeType ?? "local" });
    useMetricsExporter(prometheus);
  }
  return prometheus;
}

export const isMetricsPath = (pathname: string): boolean => pathname === "/metrics" || pathname === "/metrics/";

/**
 * Answers a scrape; false, at once, when this request is not one (or metrics are off), so
 * routing goes on without waiting a turn.
 */
export function answerScrape(method: string, pathname: string, res: ServerResponse): false | Promise<void> {
  if (!prometheus || !isMetricsPath(pathname) || (method !== "GET" && method !== "HEAD")) return false;
  return prometheus.scrape().then(({ contentType, body }) => {
    res.writeHead(200, { "content-type": contentType });
    res.end(method === "HEAD" ? undefined : body);
  });
}
