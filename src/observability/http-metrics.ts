/** The route group of a request path, for the HTTP metrics (one Lambda handler serves each group). */
export function routeGroupOf(path: string): string {
  if (path === "/metrics" || path === "/metrics/") return "metrics";
  if (path.startsWith("/health/")) return "health";
  if (path.startsWith("/e/")) return "public-endpoint";
  if (path.startsWith("/backwards-invocation/")) return "backwards-invocation";
  if (path.startsWith("/v2/invoke/dispatch/") || /^\/plugin\/[^/]+\/dispatch\//.test(path)) return "dispatch";
  if (path.startsWith("/plugin/") || path.startsWith("/v2/")) return "management";
  return "none";
}
