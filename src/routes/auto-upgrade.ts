/**
 * `/plugin/{tenant_id}/management/auto-upgrade[/...]`: a tenant's auto-upgrade strategy (Dify's
 * fields and defaults), excluding one plugin, the last check, and a check on demand
 * (docs/auto-upgrade.md, "Routes").
 */
import { z } from "zod";
import {
  DEFAULT_STRATEGY,
  excludePlugin,
  STRATEGY_SETTINGS,
  UPGRADE_MODES,
  type UpgradeStrategy,
} from "../domain/upgrade-strategy.js";
import { bind, type DaemonRequest } from "../http/daemon-request.js";
import { ok } from "../http/daemon-response.js";
import type { Route } from "../http/router.js";
import type { AutoUpgrade } from "../services/auto-upgrade.js";
import type { UpgradeStrategies } from "../stores/upgrade-strategies.js";

const A = "/plugin/:tenant_id/management/auto-upgrade";

/** `org/name` (or a bare name), as plugin ids appear in identifiers. */
const pluginId = z.string().regex(/^(?:[a-z0-9_-]{1,64}\/)?[a-z0-9_-]{1,255}$/, "must be a plugin id like org/name");
const pluginIds = z
  .array(pluginId)
  .max(1024)
  .transform((ids) => [...new Set(ids)]);

/** Dify's `PluginAutoUpgradeSettingsPayload`: every field optional, with its defaults. */
const strategyBody = z.object({
  strategy_setting: z.enum(STRATEGY_SETTINGS).default(DEFAULT_STRATEGY.strategy_setting),
  upgrade_time_of_day: z.coerce.number().int().min(0).max(86_399).default(DEFAULT_STRATEGY.upgrade_time_of_day),
  upgrade_mode: z.enum(UPGRADE_MODES).default(DEFAULT_STRATEGY.upgrade_mode),
  exclude_plugins: pluginIds.default([]),
  include_plugins: pluginIds.default([]),
});

const tenantOf = (req: DaemonRequest) => req.params.tenant_id ?? "";

export interface AutoUpgradeRouteDeps {
  autoUpgrade: Pick<AutoUpgrade, "checkNow" | "status">;
  upgradeStrategies: UpgradeStrategies;
}

export function autoUpgradeRoutes({ autoUpgrade, upgradeStrategies }: AutoUpgradeRouteDeps): Route[] {
  return [
    {
      method: "GET",
      pattern: A,
      handler: async (req) => ok(await autoUpgrade.status(tenantOf(req))),
    },
    {
      method: "POST",
      pattern: `${A}/set`,
      handler: async (req) => {
        const strategy: UpgradeStrategy = bind(req, strategyBody);
        return ok(await upgradeStrategies.set(tenantOf(req), strategy));
      },
    },
    {
      method: "POST",
      pattern: `${A}/exclude-plugin`,
      handler: async (req) => {
        const body = bind(req, z.object({ plugin_id: pluginId }));
        return ok(await upgradeStrategies.update(tenantOf(req), (current) => excludePlugin(current, body.plugin_id)));
      },
    },
    {
      method: "POST",
      pattern: `${A}/check-now`,
      handler: async (req) => ok(await autoUpgrade.checkNow(tenantOf(req))),
    },
  ];
}
