/**
 * How the local daemon finds which group answers a request: each group's routes (the groups
 * themselves are defined in domain/route-groups.ts), tried in `lookupOrder`. A Lambda handler
 * imports its group's routes directly (group-runtime.ts); this module, which loads every group,
 * is for the local daemon.
 */
import type { Daemon } from "../daemon.js";
import { CATCH_ALL_GROUP, ROUTE_GROUP_NAMES, type RouteGroup, STREAMING_GROUPS } from "../domain/route-groups.js";
import type { Router } from "../http/router.js";
import { backwardsInvocationRoutes } from "./backwards-invocation.js";
import { dispatchRoutes } from "./dispatch.js";
import { type GroupRoutes, routerOf } from "./group-runtime.js";
import { managementGroup } from "./management.js";
import { publicEndpointGroup } from "./public-endpoint.js";

export type { RouteGroup } from "../domain/route-groups.js";

const groups: { [G in RouteGroup]: GroupRoutes<G> } = {
  management: managementGroup,
  dispatch: dispatchRoutes,
  "public-endpoint": publicEndpointGroup,
  "backwards-invocation": backwardsInvocationRoutes,
};

export const streamingGroups: readonly RouteGroup[] = STREAMING_GROUPS;

/** Groups tried in order; the catch-all last (it holds the health and asset routes). */
export const lookupOrder: readonly RouteGroup[] = [
  ...ROUTE_GROUP_NAMES.filter((g) => g !== CATCH_ALL_GROUP),
  CATCH_ALL_GROUP,
];

export function routerFor(d: Daemon, group: RouteGroup): Router {
  return routerOf(d, group, groups[group] as GroupRoutes<typeof group>);
}
