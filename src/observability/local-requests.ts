/**
 * The local server's side of the HTTP metrics and access log: which route group and pattern a
 * request went to and the fields of its log context, remembered per response so the access line
 * written when the response closes (outside the request's async context) carries them too.
 */
import type { ServerResponse } from "node:http";
import { routeGroupOf } from "./http-metrics.js";
import { type LogFields, logContext } from "./log-context.js";
import { metrics, secondsSince } from "./metrics.js";

interface Tracked {
  fields: Readonly<LogFields>;
  group?: string;
  pattern?: string;
}

const tracked = new WeakMap<ServerResponse, Tracked>();

/** Called as the request starts being handled, inside its log context. */
export function trackRequest(res: ServerResponse): void {
  tracked.set(res, { fields: logContext() });
}

export function rememberRoute(res: ServerResponse, route: { group: string; route: { pattern: string } }): void {
  const t = tracked.get(res);
  if (t) Object.assign(t, { group: route.group, pattern: route.route.pattern });
}

/** Records the request's metric; returns its log fields for the access line. */
export function finishRequest(
  method: string,
  target: string,
  res: ServerResponse,
  startedMs: number,
): Readonly<LogFields> {
  const t = tracked.get(res);
  const path = target.split("?")[0] ?? "/";
  metrics.httpRequest({
    routeGroup: t?.group ?? (routeGroupOf(path) === "metrics" ? "metrics" : "none"),
    route: t?.pattern ?? (routeGroupOf(path) === "metrics" ? "/metrics" : ""),
    method,
    status: res.headersSent ? res.statusCode : 0,
    seconds: secondsSince(startedMs),
  });
  return t?.fields ?? {};
}
