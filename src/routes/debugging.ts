/**
 * `POST /plugin/{tenant_id}/debugging/key` (upstream internal/server/controllers/remote_debugging.go): the tenant's key for connecting
 * a plugin over TCP in remote (debug) mode. Served only when remote installing is enabled;
 * otherwise the route does not exist (404, as upstream).
 */
import { ok } from "../http/daemon-response.js";
import type { Route } from "../http/router.js";
import type { DebuggingKeys } from "../stores/debugging-keys.js";

/** `keys` is undefined when remote installing is disabled. */
export function debuggingRoutes(keys: DebuggingKeys | undefined): Route[] {
  if (!keys) return [];
  return [
    {
      method: "POST",
      pattern: "/plugin/:tenant_id/debugging/key",
      handler: async (req) => ok({ key: await keys.keyFor(req.params.tenant_id ?? "") }),
    },
  ];
}
