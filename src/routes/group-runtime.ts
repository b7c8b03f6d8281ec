/**
 * A route group's router on a daemon, built on first use and shared by the group's Lambda
 * handler (functions/<group>.ts) and the local daemon (groups.ts). A handler imports only its own
 * group's routes, so it loads none of the other groups' code; the routes get only what the
 * composition root wired for their group (`Daemon.groups`), never the daemon itself.
 */
import { type Daemon, sharedDaemon } from "../daemon.js";
import type { RouteGroup } from "../domain/route-groups.js";
import type { RouteGroupRuntime } from "../http/apigateway.js";
import { type Route, Router } from "../http/router.js";
import type { AssetRouteDeps } from "./assets.js";
import type { TransactionDeps } from "./backwards-invocation.js";
import type { DispatchDeps } from "./dispatch.js";
import type { ManagementDeps } from "./management.js";
import type { PublicEndpointDeps } from "./public-endpoint.js";
import { counted } from "./request-activity.js";
import type { KeepAliveDeps } from "./stream-keepalive.js";

/** What each group's routes are built from. */
export interface GroupDeps {
  management: ManagementDeps;
  dispatch: DispatchDeps & AssetRouteDeps & KeepAliveDeps;
  "public-endpoint": PublicEndpointDeps;
  "backwards-invocation": TransactionDeps & KeepAliveDeps;
}

/** Builds a group's routes from its dependencies. */
export type GroupRoutes<G extends RouteGroup> = (deps: GroupDeps[G]) => Route[];

const routers = new WeakMap<Daemon, Map<GroupRoutes<RouteGroup>, Router>>();

export function routerOf<G extends RouteGroup>(d: Daemon, group: G, routes: GroupRoutes<G>): Router {
  let built = routers.get(d);
  if (!built) routers.set(d, (built = new Map()));
  const key = routes as GroupRoutes<RouteGroup>;
  let router = built.get(key);
  if (!router) built.set(key, (router = new Router(routes(d.groups[group]).map(counted))));
  return router;
}

/**
 * What a Lambda handler of a group needs, built from the process-wide daemon on first request and
 * kept: every later request awaits the one settled promise.
 */
export function groupRuntime<G extends RouteGroup>(group: G, routes: GroupRoutes<G>): () => Promise<RouteGroupRuntime> {
  let runtime: Promise<RouteGroupRuntime> | undefined;
  return () =>
    (runtime ??= sharedDaemon().then((d) => ({ router: routerOf(d, group, routes), daemonKey: d.daemonKey })));
}
