/**
 * A small route table: `:name` matches one path segment, a trailing `*name` matches the rest.
 * Each Lambda handler serves one group of routes; the local daemon serves all groups.
 */
import type { DaemonRequest } from "./daemon-request.js";
import type { DaemonResponse } from "./daemon-response.js";

export type RouteHandler = (req: DaemonRequest) => Promise<DaemonResponse>;

export interface Route {
  method: string | "*";
  pattern: string;
  handler: RouteHandler;
  /** Routes without the daemon key check: health, public endpoints, plugin callbacks. */
  public?: boolean;
}

interface CompiledRoute extends Route {
  regex: RegExp;
  names: string[];
}

export interface RouteMatch {
  route: Route;
  params: Record<string, string>;
}

export class Router {
  private readonly routes: CompiledRoute[];

  constructor(routes: Route[]) {
    this.routes = routes.map(compile);
  }

  match(method: string, path: string): RouteMatch | undefined {
    for (const route of this.routes) {
      if (route.method !== "*" && route.method !== method) continue;
      const m = route.regex.exec(path);
      if (!m) continue;
      const params: Record<string, string> = {};
      route.names.forEach((name, i) => {
        params[name] = decodeURIComponent(m[i + 1] ?? "");
      });
      return { route, params };
    }
    return undefined;
  }
}

function compile(route: Route): CompiledRoute {
  const names: string[] = [];
  const source = route.pattern
    .split("/")
    .map((segment) => {
      if (segment.startsWith(":")) {
        names.push(segment.slice(1));
        return "([^/]+)";
      }
      if (segment.startsWith("*")) {
        names.push(segment.slice(1));
        return "?(.*)";
      }
      return segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    })
    .join("/");
  return { ...route, names, regex: new RegExp(`^${source}/?$`) };
}
