/**
 * `/plugin/{tenant_id}/management/*` (upstream internal/server/controllers/plugins.go), one
 * module per area under management/; `managementGroup` is everything the management handler
 * serves.
 */
import type { Route } from "../http/router.js";
import type { EndpointManager } from "../services/endpoint-manager.js";
import type { DebuggingKeys } from "../stores/debugging-keys.js";
import { type AssetRouteDeps, assetRoutes } from "./assets.js";
import { type AutoUpgradeRouteDeps, autoUpgradeRoutes } from "./auto-upgrade.js";
import { debuggingRoutes } from "./debugging.js";
import { endpointRoutes } from "./endpoints.js";
import { type HealthRouteDeps, healthRoutes } from "./health.js";
import { type InstallRouteDeps, installRoutes } from "./management/installs.js";
import { listingRoutes } from "./management/listings.js";
import { type PackageRouteDeps, packageRoutes } from "./management/packages.js";
import { providerRoutes } from "./management/providers.js";
import { type TaskRouteDeps, taskRoutes } from "./management/tasks.js";

/** What the management handler's routes are built from; each module takes its part. */
export interface ManagementDeps
  extends HealthRouteDeps,
    PackageRouteDeps,
    InstallRouteDeps,
    TaskRouteDeps,
    AutoUpgradeRouteDeps,
    AssetRouteDeps {
  endpoints: EndpointManager;
  /** Present only when remote installing is enabled: otherwise the key route does not exist. */
  debuggingKeys: DebuggingKeys | undefined;
}

/** The management handler's routes: management, endpoint setup, auto-upgrade, assets, health, debugging key. */
export function managementGroup(deps: ManagementDeps): Route[] {
  return [
    ...healthRoutes(deps),
    ...managementRoutes(deps),
    ...endpointRoutes(deps.endpoints),
    ...autoUpgradeRoutes(deps),
    ...assetRoutes(deps),
    ...debuggingRoutes(deps.debuggingKeys),
  ];
}

/** `/plugin/{tenant_id}/management/*` alone; the category search goes last (see listingRoutes). */
export function managementRoutes(deps: PackageRouteDeps & InstallRouteDeps & TaskRouteDeps): Route[] {
  return [
    ...packageRoutes(deps),
    ...installRoutes(deps),
    ...taskRoutes(deps),
    ...providerRoutes(deps.catalog),
    ...listingRoutes(deps.catalog),
  ];
}
