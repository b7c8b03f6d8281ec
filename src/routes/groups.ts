/**
 * Route groups: each is served by one Lambda handler (functions/<group>.ts) and all of them by
 * the local daemon. The API Gateway routes in infra/ mirror this split.
 */
import { sharedDaemon, type Daemon } from "../daemon.js";
import type { RouteGroupRuntime } from "../http/apigateway.js";
import { Router, type Route } from "../http/router.js";
import { assetRoutes } from "./assets.js";
import { autoUpgradeRoutes } from "./auto-upgrade.js";
import { backwardsInvocationRoutes } from "./backwards-invocation.js";
import { endpointRoutes } from "./endpoints.js";
import { publicEndpointRoutes } from "./public-endpoint.js";
import { dispatchRoutes } from "./dispatch.js";
import { healthRoutes } from "./health.js";
import { managementRoutes } from "./management.js";

export type RouteGroup = "management" | "dispatch" | "public-endpoint" | "backwards-invocation";

const builders: Record<RouteGroup, (d: Daemon) => Route[]> = {
  management: (d) => [...healthRoutes(d), ...managementRoutes(d), ...endpointRoutes(d.endpoints), ...autoUpgradeRoutes(d), ...assetRoutes(d)],
  dispatch: dispatchRoutes,
  "public-endpoint": (d) => publicEndpointRoutes(d.endpointInvoker, d.config.endpointsEnabled),
  "backwards-invocation": (d) =>
    backwardsInvocationRoutes({ sessions: d.pluginSessions, backwards: d.backwards, callbackSecret: d.daemonKey }),
};

export const streamingGroups: readonly RouteGroup[] = ["dispatch", "public-endpoint", "backwards-invocation"];

const routers = new WeakMap<Daemon, Map<RouteGroup, Router>>();

export function routerFor(d: Daemon, group: RouteGroup): Router {
  let byGroup = routers.get(d);
  if (!byGroup) routers.set(d, (byGroup = new Map()));
  let router = byGroup.get(group);
  if (!router) byGroup.set(group, (router = new Router(builders[group](d))));
  return router;
}

/** What a Lambda handler of a group needs, built from the process-wide daemon on first request. */
export function groupRuntime(group: RouteGroup): () => Promise<RouteGroupRuntime> {
  return async () => {
    const d = await sharedDaemon();
    return { router: routerFor(d, group), daemonKey: d.daemonKey };
  };
}
