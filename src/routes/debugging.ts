/**
 * `POST /plugin/{tenant_id}/debugging/key` (upstream internal/server/controllers/remote_debugging.go): the tenant's key for connecting
 * a plugin over TCP in remote (debug) mode. Served only when remote installing is enabled;
 * otherwise the route does not exist (404, as upstream).
 */
import type { Daemon } from "../daemon.js";
import { ok } from "../http/daemon-response.js";
import type { Route } from "../http/router.js";
import { DebuggingKeys } from "../stores/debugging-keys.js";

export function debuggingRoutes(d: Daemon): Route[] {
  if (!d.config.remoteInstallingEnabled) return [];
  const debuggingKeys = new DebuggingKeys(d.items);
  return [
    {
      method: "POST",
      pattern: "/plugin/:tenant_id/debugging/key",
      handler: async (req) => ok({ key: await debuggingKeys.keyFor(req.params.tenant_id ?? "") }),
    },
  ];
}
