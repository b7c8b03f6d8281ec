/**
 * A route group's router on a daemon, built on first use and shared by the group's Lambda
 * handler (functions/<group>.ts) and the local daemon (groups.ts). A handler imports only its own
 * group's routes, so it loads none of the other groups' code.
 */
import { type Daemon, sharedDaemon } from "../daemon.js";
import type { RouteGroupRuntime } from "../http/apigateway.js";
import { type Route, Router } from "../http/router.js";
import { counted } from "./request-activity.js";

/** Builds a group's routes on a daemon. */
export type GroupRoutes = (d: Daemon) => Route[];

const routers = new WeakMap<Daemon, Map<GroupRoutes, Router>>();

export function routerOf(d: Daemon, routes: GroupRoutes): Router {
  let byGroup = routers.get(d);
  if (!byGroup) routers.set(d, (byGroup = new Map()));
  let router = byGroup.get(routes);
  if (!router) byGroup.set(routes, (router = new Router(routes(d).map(counted))));
  return router;
}

/** What a Lambda handler of a group needs, built from the process-wide daemon on first request. */
export function groupRuntime(routes: GroupRoutes): () => Promise<RouteGroupRuntime> {
  return async () => {
    const d = await sharedDaemon();
    return { router: routerOf(d, routes), daemonKey: d.daemonKey };
  };
}
