/**
 * Route groups: each is served by one Lambda handler (functions/<group>.ts) and all of them by
 * the local daemon. The API Gateway routes in infra/ mirror this split. A handler imports its
 * group's routes directly (group-runtime.ts); this module, which loads every group, is for the
 * local daemon.
 */
import type { Daemon } from "../daemon.js";
import type { Router } from "../http/router.js";
import { backwardsInvocationGroup } from "./backwards-invocation.js";
import { dispatchRoutes } from "./dispatch.js";
import { type GroupRoutes, routerOf } from "./group-runtime.js";
import { managementGroup } from "./management.js";
import { publicEndpointGroup } from "./public-endpoint.js";

export type RouteGroup = "management" | "dispatch" | "public-endpoint" | "backwards-invocation";

const groups: Record<RouteGroup, GroupRoutes> = {
  management: managementGroup,
  dispatch: dispatchRoutes,
  "public-endpoint": publicEndpointGroup,
  "backwards-invocation": backwardsInvocationGroup,
};

export const streamingGroups: readonly RouteGroup[] = ["dispatch", "public-endpoint", "backwards-invocation"];

export function routerFor(d: Daemon, group: RouteGroup): Router {
  return routerOf(d, groups[group]);
}
