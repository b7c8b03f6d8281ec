/**
 * The route groups' one definition (src/domain/route-groups.ts) against what reads it: each group
 * is a handler entry of its own kind (streaming or buffered), and every route the local daemon
 * finds in a group reaches, through the API's paths, a function that serves that route.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { HANDLER_NAMES } from "../../infra/settings.js";
import { loadConfig } from "../../src/config.js";
import { createDaemon, localAdapters } from "../../src/daemon.js";
import {
  API_PATHS,
  CATCH_ALL_GROUP,
  ROUTE_GROUP_NAMES,
  ROUTE_GROUPS,
  type RouteGroup,
} from "../../src/domain/route-groups.js";
import type { Route } from "../../src/http/router.js";
import { assetRoutes } from "../../src/routes/assets.js";
import { backwardsInvocationRoutes } from "../../src/routes/backwards-invocation.js";
import { dispatchRoutes } from "../../src/routes/dispatch.js";
import { lookupOrder, routerFor } from "../../src/routes/groups.js";
import { managementGroup } from "../../src/routes/management.js";
import { publicEndpointGroup } from "../../src/routes/public-endpoint.js";

const repoRoot = join(import.meta.dirname, "..", "..");
const dataDir = mkdtempSync(join(tmpdir(), "route-groups-"));
const config = loadConfig({ STORE_BACKEND: "local", DATA_DIR: dataDir, SERVER_KEY: "k", PLUGIN_KEEP_WARM: "" });
const daemon = createDaemon(config, await localAdapters(config));
afterAll(async () => {
  await daemon.close();
  rmSync(dataDir, { recursive: true, force: true });
});

/** The routes each group's handler serves (functions/<group>.ts): dispatch also answers the raw-bytes assets. */
const handlerRoutes: Record<RouteGroup, Route[]> = {
  management: managementGroup(daemon.groups.management),
  dispatch: [...dispatchRoutes(daemon.groups.dispatch), ...assetRoutes(daemon.groups.dispatch)],
  "public-endpoint": publicEndpointGroup(daemon.groups["public-endpoint"]),
  "backwards-invocation": backwardsInvocationRoutes(daemon.groups["backwards-invocation"]),
};

/** The group API Gateway sends a path to: the matching resource with the most literal segments. */
function apiGroupFor(path: string): RouteGroup {
  const matching = API_PATHS.filter(({ path: resource }) => {
    const pattern = resource.replace(/\{[a-z_]+\+\}/g, ".+").replace(/\{[a-z_]+\}/g, "[^/]+");
    return new RegExp(`^${pattern}$`).test(path);
  });
  const literal = (resource: string) => resource.split("/").filter((s) => s && !s.startsWith("{")).length;
  const best = matching.sort((a, b) => literal(b.path) - literal(a.path))[0];
  return best?.group ?? CATCH_ALL_GROUP;
}

/** A request path the route's pattern matches. */
const samplePath = (pattern: string) => pattern.replace(/:[a-z_]+/g, "p").replace(/\*[a-z_]+$/, "rest/of/path");

describe("route groups", () => {
  it("are handler entries named after their group, streaming exactly when the definition says so", () => {
    for (const group of ROUTE_GROUP_NAMES) {
      const { handler, streams } = ROUTE_GROUPS[group];
      expect(handler).toBe(`functions/${group}.ts`);
      expect(HANDLER_NAMES).toContain(group);
      const source = readFileSync(join(repoRoot, handler), "utf8");
      expect(source, handler).toContain(streams ? "streamingHandler(" : "bufferedHandler(");
    }
  });

  it("own API paths each, and the catch-all owns the root proxy and is tried last locally", () => {
    for (const group of ROUTE_GROUP_NAMES)
      expect(
        API_PATHS.some((p) => p.group === group),
        group,
      ).toBe(true);
    expect(API_PATHS.find((p) => p.path === "/{proxy+}")?.group).toBe(CATCH_ALL_GROUP);
    expect(lookupOrder.at(-1)).toBe(CATCH_ALL_GROUP);
    expect([...lookupOrder].sort()).toEqual([...ROUTE_GROUP_NAMES].sort());
  });

  it("send every route the local daemon finds to a function that serves it", () => {
    let checked = 0;
    for (const group of lookupOrder) {
      for (const route of handlerRoutes[group]) {
        const path = samplePath(route.pattern);
        const method = route.method === "*" ? "POST" : route.method;
        // Only routes the local lookup assigns to this group (an earlier group may claim a path first).
        if (routerFor(daemon, group).find(method, path)?.pattern !== route.pattern) continue;
        const aws = apiGroupFor(path);
        expect(
          handlerRoutes[aws].some((r) => r.pattern === route.pattern),
          `${method} ${route.pattern}: local ${group}, API ${aws}`,
        ).toBe(true);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(40);
  });
});
