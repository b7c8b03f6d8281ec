/**
 * `GET /health/check`: raw JSON without an envelope, in upstream's fields
 * (internal/server/controllers/health_check.go, langgenius/dify-plugin-daemon@bdb5642a).
 * The counts are this process's: on AWS each Lambda instance answers for itself.
 */
import packageJson from "../../package.json" with { type: "json" };
import { json } from "../http/daemon-response.js";
import type { Route } from "../http/router.js";
import { requestActivity } from "./request-activity.js";

export const DAEMON_VERSION: string = packageJson.version;

const startedAt = Date.now();

export interface HealthRouteDeps {
  /** What upstream's `platform` field says: Lambda plugins are "serverless". */
  platform: "serverless" | "local";
}

export function healthRoutes({ platform }: HealthRouteDeps): Route[] {
  return [
    {
      method: "GET",
      pattern: "/health/check",
      public: true,
      handler: async () => {
        const activity = requestActivity();
        return json({
          status: "ok",
          // Upstream reports its goroutine pool; this daemon has no fixed pool, so the streams
          // being written are what is busy, and nothing is held free.
          pool_status: { free: 0, busy: activity.activeStreams, total: activity.activeStreams },
          version: DAEMON_VERSION,
          build_time: "",
          platform,
          active_requests: activity.activeRequests,
          active_dispatch_requests: activity.activeDispatchRequests,
          uptime_seconds: Math.floor((Date.now() - startedAt) / 1000),
        });
      },
    },
  ];
}
