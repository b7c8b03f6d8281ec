/** `GET /health/check`: raw JSON without an envelope, like upstream. */
import { json } from "../http/daemon-response.js";
import type { Route } from "../http/router.js";
import type { Daemon } from "../daemon.js";

export const DAEMON_VERSION = "0.1.0";

export function healthRoutes(d: Daemon): Route[] {
  return [
    {
      method: "GET",
      pattern: "/health/check",
      public: true,
      handler: async () =>
        json({
          status: "ok",
          pool_status: {},
          version: DAEMON_VERSION,
          build_time: "",
          platform: d.config.storeBackend === "aws" ? "serverless" : "local",
          active_requests: 0,
          active_dispatch_requests: 0,
        }),
    },
  ];
}
