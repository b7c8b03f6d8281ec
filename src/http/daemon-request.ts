/**
 * The transport-neutral view of an HTTP request that route handlers see, whether it came
 * through API Gateway or the local daemon's HTTP server.
 */
import type { Readable } from "node:stream";
import { z } from "zod";
import { DaemonError } from "../domain/errors.js";
import { parseJsonBody } from "./json-body.js";

export interface DaemonRequest {
  method: string;
  /** Path as the client sent it, without an API Gateway stage prefix. */
  path: string;
  /** Route parameters filled in by the router. */
  params: Record<string, string>;
  query: URLSearchParams;
  /** Header names lower-cased. */
  headers: Record<string, string>;
  body: Buffer;
  /**
   * Set instead of `body` for package and bundle uploads on the local daemon: the request body
   * as it arrives, read by the multipart parser under the route's cap (`body` is then empty).
   */
  bodyStream?: Readable;
  /** Caller's address, for logs and endpoint requests. */
  sourceIp?: string;
}

export const header = (req: DaemonRequest, name: string): string | undefined => req.headers[name.toLowerCase()];

/**
 * Binds a request like upstream's BindRequest: JSON body when Content-Type is exactly
 * application/json, form fields for urlencoded bodies, and URL query parameters always, so
 * `GET decode/from_identifier` works with Dify's JSON body as well as with a query string.
 * A validation failure is the upstream 400 with code -400.
 */
export function bind<T extends z.ZodType>(req: DaemonRequest, schema: T): z.infer<T> {
  bindObserver?.(req, schema);
  const fields: Record<string, unknown> = {};
  const addParams = (params: URLSearchParams) => {
    for (const key of new Set(params.keys())) {
      const values = params.getAll(key);
      fields[key] = values.length > 1 ? values : values[0];
    }
  };
  addParams(req.query);
  const contentType = (header(req, "content-type") ?? "").split(";")[0]?.trim().toLowerCase();
  if (req.body.length > 0) {
    if (contentType === "application/json") {
      const parsed = parseJsonBody(req.body);
      if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) Object.assign(fields, parsed);
    } else if (contentType === "application/x-www-form-urlencoded") {
      addParams(new URLSearchParams(req.body.toString("utf8")));
    }
  }
  const result = schema.safeParse(fields);
  if (!result.success) {
    const detail = result.error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; ");
    throw new BindError(detail);
  }
  return result.data;
}

/** Sees every schema a route binds its request with; the API description (src/api-description) is built from them. */
let bindObserver: ((req: DaemonRequest, schema: z.ZodType) => void) | undefined;

export function observeBinds(observer: ((req: DaemonRequest, schema: z.ZodType) => void) | undefined): void {
  bindObserver = observer;
}

/** A request that failed binding/validation: answered with HTTP 400 like upstream. */
export class BindError extends DaemonError {
  constructor(message: string) {
    super("PluginDaemonBadRequestError", message);
    this.withStatus(400);
  }
}

/** Query-string friendly pagination, the bounds upstream validates. */
export const pagination = (maxPageSize = 256) => ({
  page: z.coerce.number().int().min(1),
  page_size: z.coerce.number().int().min(1).max(maxPageSize),
});
