/**
 * The route groups, defined once: each is one Lambda handler (functions/<group>.ts, bundled to
 * dist/functions/<group>/) behind its own API Gateway integration, and the local daemon serves
 * them all. Read by the local server (which group answers, whether it streams), the handlers'
 * routes (src/routes/group-runtime.ts) and the CDK API (infra/constructs/api.ts: which paths
 * reach which function). Plain data, so infra imports it without any handler code.
 */

export interface RouteGroupSpec {
  /** The handler's entry, also the name of its bundle and of its Lambda function's construct. */
  readonly handler: string;
  /**
   * Answers are streams: API Gateway's response transfer mode STREAM (integration timeouts up to
   * 15 minutes, bytes passed through as they are), and the local server's streaming handler call.
   */
  readonly streams: boolean;
}

export const ROUTE_GROUPS = {
  /** Buffered: management, endpoint setup, auto-upgrade, health, debugging key, and upstream's 404. */
  management: { handler: "functions/management.ts", streams: false },
  /** Plugin invocation, and the raw-bytes answers (assets, extract-asset). */
  dispatch: { handler: "functions/dispatch.ts", streams: true },
  /** Public plugin endpoints `/e/{hook_id}/...`. */
  "public-endpoint": { handler: "functions/public-endpoint.ts", streams: true },
  /** Plugin → daemon backwards invocation. */
  "backwards-invocation": { handler: "functions/backwards-invocation.ts", streams: true },
} as const satisfies Record<string, RouteGroupSpec>;

export type RouteGroup = keyof typeof ROUTE_GROUPS;

export const ROUTE_GROUP_NAMES = Object.keys(ROUTE_GROUPS) as RouteGroup[];

export const STREAMING_GROUPS: readonly RouteGroup[] = ROUTE_GROUP_NAMES.filter((g) => ROUTE_GROUPS[g].streams);

/**
 * The group that answers what no other group claims: API Gateway's catch-all integration, and
 * the group the local server tries last (its routes include health, assets and the 404).
 */
export const CATCH_ALL_GROUP: RouteGroup = "management";

export interface ApiPath {
  /** An API Gateway resource path; `{proxy+}` takes the rest of the path. */
  readonly path: string;
  readonly method: "ANY" | "GET" | "POST";
  readonly group: RouteGroup;
}

/**
 * The API Gateway resources and the group each reaches, in the order they are created (the
 * deployment's id is a hash over that order). Paths missing here reach the catch-all group.
 */
export const API_PATHS: readonly ApiPath[] = [
  { path: "/", method: "ANY", group: "management" },
  { path: "/{proxy+}", method: "ANY", group: "management" },
  { path: "/plugin/{tenant_id}/management/{proxy+}", method: "ANY", group: "management" },
  { path: "/plugin/{tenant_id}/endpoint/{proxy+}", method: "ANY", group: "management" },
  { path: "/plugin/{tenant_id}/debugging/{proxy+}", method: "ANY", group: "management" },
  // Raw bytes: a buffered route would hand Dify base64 text (its Accept is */*, no binary type).
  { path: "/plugin/{tenant_id}/asset/{proxy+}", method: "ANY", group: "dispatch" },
  { path: "/plugin/{tenant_id}/extract-asset", method: "ANY", group: "dispatch" },
  { path: "/plugin/{tenant_id}/dispatch/{proxy+}", method: "POST", group: "dispatch" },
  { path: "/v2/invoke/extract", method: "ANY", group: "management" },
  { path: "/v2/invoke/dispatch/{proxy+}", method: "POST", group: "dispatch" },
  { path: "/health/check", method: "GET", group: "management" },
  { path: "/e/{hook_id}", method: "ANY", group: "public-endpoint" },
  { path: "/e/{hook_id}/{proxy+}", method: "ANY", group: "public-endpoint" },
  { path: "/backwards-invocation/transaction", method: "POST", group: "backwards-invocation" },
];
