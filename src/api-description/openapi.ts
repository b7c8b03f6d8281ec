/**
 * The OpenAPI 3.1 description of the daemon's HTTP API (docs/openapi.json), built from the routes
 * themselves: every route of every group, and for each the zod schema its handler validates the
 * request with. The schemas are taken as the handlers use them: each handler is called once with
 * an empty probe request while `bind` is observed, and the first schema it binds is recorded
 * (its query parameters for GET, its JSON body otherwise); dispatch routes, which look up the
 * plugin first, are described with their exported body schema. zod 4's own JSON Schema output
 * (draft 2020-12, which OpenAPI 3.1 uses) renders them.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import packageJson from "../../package.json" with { type: "json" };
import { loadConfig } from "../config.js";
import { createDaemon, type Daemon, localAdapters } from "../daemon.js";
import { dispatchPaths } from "../domain/dispatch-actions.js";
import { type DaemonRequest, observeBinds } from "../http/daemon-request.js";
import type { Route } from "../http/router.js";
import { backwardsInvocationRoutes } from "../routes/backwards-invocation.js";
import { dispatchBody, dispatchRoutes } from "../routes/dispatch.js";
import { managementGroup } from "../routes/management.js";
import { publicEndpointGroup } from "../routes/public-endpoint.js";
import { compareText } from "../shared/compare-text.js";

type Json = Record<string, unknown>;

const GROUPS: Array<[tag: string, routes: (d: Daemon) => Route[]]> = [
  ["dispatch", (d) => dispatchRoutes(d.groups.dispatch)],
  ["public-endpoint", (d) => publicEndpointGroup(d.groups["public-endpoint"])],
  ["backwards-invocation", (d) => backwardsInvocationRoutes(d.groups["backwards-invocation"])],
  ["management", (d) => managementGroup(d.groups.management)],
];

/** Model polling is served on the tenant path only (as upstream). */
const NOT_ON_V2 = new Set(["model/polling/start", "model/polling/check"]);

class ProbeStop extends Error {}

/** The schema a handler binds first, or undefined when it binds none before failing on the empty probe. */
async function boundSchema(route: Route, path: string): Promise<z.ZodType | undefined> {
  let seen: z.ZodType | undefined;
  observeBinds((_req, schema) => {
    seen ??= schema;
    throw new ProbeStop();
  });
  const req: DaemonRequest = {
    method: route.method === "*" ? "POST" : route.method,
    path,
    params: {},
    query: new URLSearchParams(),
    headers: {},
    body: Buffer.alloc(0),
  };
  try {
    await route.handler(req);
  } catch {
    // The probe ends every handler: by ProbeStop once it binds, by a validation or lookup error otherwise.
  } finally {
    observeBinds(undefined);
  }
  return seen;
}

const jsonSchema = (schema: z.ZodType): Json => {
  const out = z.toJSONSchema(schema, { io: "input", unrepresentable: "any", target: "draft-2020-12" }) as Json;
  delete out.$schema;
  return out;
};

/** `/plugin/:tenant_id/x/*rest` → `/plugin/{tenant_id}/x/{rest}` and its path parameters. */
function openApiPath(pattern: string): { path: string; params: string[] } {
  const params: string[] = [];
  const path = pattern
    .split("/")
    .map((part) => {
      if (part.startsWith(":") || part.startsWith("*")) {
        params.push(part.slice(1));
        return `{${part.slice(1)}}`;
      }
      return part;
    })
    .join("/");
  return { path, params };
}

const envelope = {
  type: "object",
  required: ["code", "message", "data"],
  properties: {
    code: { type: "integer", description: "0 on success, -400/-404/-500... on failure (upstream's codes)" },
    message: { type: "string" },
    data: {},
  },
};

function operation(
  route: Route,
  tag: string,
  params: string[],
  schema: z.ZodType | undefined,
  method: string,
  streamed: boolean,
): Json {
  const parameters: Json[] = params.map((name) => ({ name, in: "path", required: true, schema: { type: "string" } }));
  let requestBody: Json | undefined;
  if (schema) {
    const rendered = jsonSchema(schema);
    if (method === "get") {
      const properties = (rendered.properties ?? {}) as Record<string, Json>;
      const required = new Set((rendered.required ?? []) as string[]);
      for (const [name, s] of Object.entries(properties))
        parameters.push({ name, in: "query", required: required.has(name), schema: s });
    } else {
      requestBody = { required: true, content: { "application/json": { schema: rendered } } };
    }
  }
  // Uploads are multipart, read by the multipart parser rather than bound.
  if (!requestBody && /\/install\/upload\/(package|bundle)$/.test(route.pattern)) {
    const field = route.pattern.endsWith("bundle") ? "dify_bundle" : "dify_pkg";
    requestBody = {
      required: true,
      content: {
        "multipart/form-data": {
          schema: {
            type: "object",
            required: [field],
            properties: {
              [field]: { type: "string", contentMediaType: "application/octet-stream" },
              verify_signature: { type: "string", enum: ["true", "false"] },
            },
          },
        },
      },
    };
  }
  const answer = streamed
    ? {
        description: "server-sent events, one `data: <envelope>` line per chunk",
        content: { "text/event-stream": { schema: { type: "string" } } },
      }
    : {
        description: "upstream's envelope (most errors are HTTP 200 or 400 with a negative code)",
        content: { "application/json": { schema: { $ref: "#/components/schemas/Envelope" } } },
      };
  return {
    tags: [tag],
    operationId: `${method}_${route.pattern.replace(/[^a-zA-Z0-9]+/g, "_").replace(/^_|_$/g, "")}`,
    ...(parameters.length > 0 && { parameters }),
    ...(requestBody && { requestBody }),
    ...(route.public ? { security: [] } : {}),
    responses: {
      "200": answer,
      "400": {
        description: "the request failed validation",
        content: { "application/json": { schema: { $ref: "#/components/schemas/Envelope" } } },
      },
      ...(route.public ? {} : { "401": { description: "missing or wrong X-Api-Key" } }),
      "404": { description: "no such route" },
    },
  };
}

/** Builds the document on a throwaway local daemon (nothing is started, nothing kept). */
export async function openApiDocument(): Promise<Json> {
  const dataDir = mkdtempSync(join(tmpdir(), "openapi-"));
  const config = loadConfig({
    STORE_BACKEND: "local",
    DATA_DIR: dataDir,
    SERVER_KEY: "openapi-description",
    AUTO_UPGRADE_ENABLED: "false",
    PLUGIN_KEEP_WARM: "",
  });
  const daemon = createDaemon(config, await localAdapters(config));
  const paths: Record<string, Record<string, Json>> = {};
  try {
    for (const [tag, build] of GROUPS) {
      for (const route of build(daemon)) {
        const isDispatch = route.pattern.endsWith("/dispatch/*action");
        const expanded = isDispatch
          ? dispatchPaths
              .filter((a) => !(route.pattern.startsWith("/v2/") && NOT_ON_V2.has(a)))
              .map((a) => route.pattern.replace("*action", a))
          : [route.pattern];
        for (const pattern of expanded) {
          const { path, params } = openApiPath(pattern);
          if (paths[path]?.[route.method.toLowerCase()]) continue;
          const schema = isDispatch ? dispatchBody : await boundSchema(route, pattern);
          const methods =
            route.method === "*" ? ["get", "post", "put", "patch", "delete"] : [route.method.toLowerCase()];
          for (const method of methods) {
            (paths[path] ??= {})[method] = operation(
              route,
              tag,
              params,
              route.method === "*" ? undefined : schema,
              method,
              isDispatch || tag !== "management",
            );
          }
        }
      }
    }
  } finally {
    await daemon.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "Dify plugin daemon (AWS serverless and local)",
      version: packageJson.version,
      description:
        "The HTTP API Dify's API server uses (PLUGIN_DAEMON_URL), the same as upstream langgenius/dify-plugin-daemon. Generated from the routes and their zod request schemas; do not edit by hand (npx tsx scripts/write-openapi.ts).",
    },
    servers: [{ url: "http://127.0.0.1:5002", description: "local daemon" }],
    security: [{ daemonKey: [] }],
    paths: Object.fromEntries(Object.entries(paths).sort(([a], [b]) => compareText(a, b))),
    components: {
      securitySchemes: {
        daemonKey: {
          type: "apiKey",
          in: "header",
          name: "X-Api-Key",
          description: "Dify's PLUGIN_DAEMON_KEY (the daemon's SERVER_KEY)",
        },
      },
      schemas: { Envelope: envelope },
    },
  };
}
