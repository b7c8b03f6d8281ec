/**
 * A small route table: `:name` matches one path segment, a trailing `*name` matches the rest.
 * Each Lambda handler serves one group of routes; the local daemon serves all groups.
 */
import { badRequest } from "../domain/errors.js";
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
  /** Which names are single segments (`:name`); the others are `*rest`. */
  segment: boolean[];
}

export interface RouteMatch {
  route: Route;
  params: Record<string, string>;
}

interface Lookup {
  route: CompiledRoute;
  groups: string[];
}

export class Router {
  private readonly routes: CompiledRoute[];

  constructor(routes: Route[]) {
    this.routes = routes.map(compile);
  }

  /** The route serving a request, without reading its parameters (never throws). */
  find(method: string, path: string): Route | undefined {
    return this.lookup(method, path)?.route;
  }

  /**
   * The route and its decoded parameters. A parameter that is not valid percent-encoding, or a
   * single-segment parameter that decodes to a path (`/`, NUL, `.`, `..`), is the caller's
   * mistake: a 400, never an exception that escapes as a bare 500.
   */
  match(method: string, path: string): RouteMatch | undefined {
    const found = this.lookup(method, path);
    if (!found) return undefined;
    const { route, groups } = found;
    const params: Record<string, string> = {};
    route.names.forEach((name, i) => {
      const raw = groups[i] ?? "";
      let value: string;
      try {
        value = decodeURIComponent(raw);
      } catch {
        throw badRequest(`malformed percent-escape in path parameter ${name}`).withStatus(400);
      }
      if (route.segment[i] && (value.includes("/") || value.includes("\0") || value === "." || value === "..")) {
        throw badRequest(`invalid path parameter ${name}`).withStatus(400);
      }
      params[name] = value;
    });
    return { route, params };
  }

  /** The last lookup: a request is looked up more than once on its way (route check, then handler). */
  private last: { method: string; path: string; found: Lookup | undefined } | undefined;

  private lookup(method: string, path: string): Lookup | undefined {
    const last = this.last;
    if (last && last.path === path && last.method === method) return last.found;
    let found: Lookup | undefined;
    for (const route of this.routes) {
      if (route.method !== "*" && route.method !== method) continue;
      const m = route.regex.exec(path);
      if (m) {
        found = { route, groups: m.slice(1) };
        break;
      }
    }
    this.last = { method, path, found };
    return found;
  }
}

function compile(route: Route): CompiledRoute {
  const names: string[] = [];
  const segment: boolean[] = [];
  const source = route.pattern
    .split("/")
    .map((part) => {
      if (part.startsWith(":")) {
        names.push(part.slice(1));
        segment.push(true);
        return "([^/]+)";
      }
      if (part.startsWith("*")) {
        names.push(part.slice(1));
        segment.push(false);
        return "?(.*)";
      }
      return part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    })
    .join("/");
  return { ...route, names, segment, regex: new RegExp(`^${source}/?$`) };
}
