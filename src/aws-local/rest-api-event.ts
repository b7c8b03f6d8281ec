/**
 * Lambda proxy events as API Gateway's REST API (payload format 1.0) builds them: what the
 * daemon's handlers receive on AWS, for the local API Gateway (api-gateway.ts) and for tests.
 *
 * What API Gateway does and this reproduces:
 * - `path` is the resource path the client asked for WITHOUT the stage; `requestContext.path`
 *   has the stage (`/prod/plugin/...`) and `requestContext.stage` names it;
 * - `resource` / `requestContext.resourcePath` / `pathParameters` come from the API's resource
 *   tree (most specific match: literal segment, then `{param}`, then greedy `{proxy+}`);
 * - header names keep the client's case; `headers` holds the last value of a repeated header,
 *   `multiValueHeaders` all of them; the gateway adds Host, X-Forwarded-For/-Port/-Proto and
 *   X-Amzn-Trace-Id;
 * - query parameters decoded, `queryStringParameters` (last value) and
 *   `multiValueQueryStringParameters` (all), both `null` without a query string;
 * - a body whose Content-Type matches one of the API's binary media types arrives base64-encoded
 *   with `isBase64Encoded: true`, any other as text; a GET may carry a body (Dify sends
 *   `GET .../decode/from_identifier` with JSON), which a Regional REST API passes on.
 */
import { randomBytes, randomUUID } from "node:crypto";
import type { APIGatewayProxyEvent } from "aws-lambda";

export interface RestApiEventSettings {
  stage: string;
  /** The API's binaryMediaTypes. */
  binaryMediaTypes: readonly string[];
  /** Resource paths of the API (e.g. `/plugin/{tenant_id}/dispatch/{proxy+}`). */
  resourcePaths: Iterable<string>;
  apiId: string;
  region: string;
  accountId: string;
}

export interface RestRequest {
  method: string;
  /** The path after the stage, e.g. `/plugin/t1/management/list`; may end with `?query`. */
  path: string;
  /** Names as the client sends them; an array repeats the header. */
  headers?: Record<string, string | readonly string[]>;
  /** Added to the path's own query string. */
  query?: Record<string, string | readonly string[]>;
  body?: string | Uint8Array;
  sourceIp?: string;
}

export interface ResourceMatch {
  resource: string;
  pathParameters: Record<string, string> | null;
}

/** The event for a request to `resource` (see matchResource). */
export function restApiEvent(
  request: RestRequest,
  api: RestApiEventSettings,
  match: ResourceMatch,
): APIGatewayProxyEvent {
  const method = request.method.toUpperCase();
  const url = new URL(request.path, "https://placeholder");
  const path = url.pathname;
  for (const [name, value] of Object.entries(request.query ?? {})) {
    for (const v of typeof value === "string" ? [value] : value) url.searchParams.append(name, v);
  }
  const { resource, pathParameters } = match;

  const sourceIp = request.sourceIp ?? "198.51.100.7";
  const domainName = `${api.apiId}.execute-api.${api.region}.amazonaws.com`;
  const body = request.body === undefined ? undefined : Buffer.from(request.body);
  const multiValueHeaders: Record<string, string[]> = {};
  const add = (name: string, value: string) => {
    const existing = Object.keys(multiValueHeaders).find((n) => n.toLowerCase() === name.toLowerCase());
    (multiValueHeaders[existing ?? name] ??= []).push(value);
  };
  for (const [name, value] of Object.entries(request.headers ?? {})) {
    for (const v of typeof value === "string" ? [value] : value) add(name, v);
  }
  const has = (name: string) => Object.keys(multiValueHeaders).some((n) => n.toLowerCase() === name.toLowerCase());
  if (!has("host")) add("Host", domainName);
  if (body && !has("content-length")) add("Content-Length", String(body.length));
  add("X-Amzn-Trace-Id", `Root=1-${Math.floor(Date.now() / 1000).toString(16)}-${randomBytes(12).toString("hex")}`);
  add("X-Forwarded-For", sourceIp);
  add("X-Forwarded-Port", "443");
  add("X-Forwarded-Proto", "https");
  const headers = Object.fromEntries(Object.entries(multiValueHeaders).map(([n, vs]) => [n, vs.at(-1) as string]));

  const multiValueQueryStringParameters: Record<string, string[]> = {};
  for (const [name, value] of url.searchParams) (multiValueQueryStringParameters[name] ??= []).push(value);
  const hasQuery = Object.keys(multiValueQueryStringParameters).length > 0;

  const contentType = Object.entries(headers).find(([n]) => n.toLowerCase() === "content-type")?.[1];
  const binary = isBinaryMediaType(contentType ?? "application/json", api.binaryMediaTypes);
  const now = new Date();
  return {
    resource,
    path,
    httpMethod: method,
    headers,
    multiValueHeaders,
    queryStringParameters: hasQuery
      ? Object.fromEntries(Object.entries(multiValueQueryStringParameters).map(([n, vs]) => [n, vs.at(-1) as string]))
      : null,
    multiValueQueryStringParameters: hasQuery ? multiValueQueryStringParameters : null,
    pathParameters,
    stageVariables: null,
    requestContext: {
      resourceId: randomBytes(3).toString("hex"),
      resourcePath: resource,
      httpMethod: method,
      extendedRequestId: randomBytes(8).toString("base64url"),
      requestTime: apiGatewayTime(now),
      path: `/${api.stage}${path}`,
      accountId: api.accountId,
      protocol: "HTTP/1.1",
      stage: api.stage,
      domainPrefix: api.apiId,
      requestTimeEpoch: now.getTime(),
      requestId: randomUUID(),
      identity: {
        cognitoIdentityPoolId: null,
        accountId: null,
        cognitoIdentityId: null,
        caller: null,
        sourceIp,
        principalOrgId: null,
        accessKey: null,
        cognitoAuthenticationType: null,
        cognitoAuthenticationProvider: null,
        userArn: null,
        userAgent: headers[Object.keys(headers).find((n) => n.toLowerCase() === "user-agent") ?? ""] ?? null,
        user: null,
        apiKey: null,
        apiKeyId: null,
        clientCert: null,
      },
      domainName,
      apiId: api.apiId,
      authorizer: undefined,
    },
    body: body && body.length > 0 ? (binary ? body.toString("base64") : body.toString("utf8")) : null,
    isBase64Encoded: Boolean(body && body.length > 0 && binary),
  };
}

/**
 * Whether a media type matches one of the binary media types (`type/subtype`, `type/*` or
 * `*` + `/*`): request bodies of such a Content-Type reach Lambda base64-encoded. API Gateway
 * assumes application/json for a body without a Content-Type.
 */
export function isBinaryMediaType(mediaType: string, binaryMediaTypes: readonly string[]): boolean {
  const [type = "", subtype = ""] = mediaType.split(";")[0]!.trim().toLowerCase().split("/");
  return binaryMediaTypes.some((entry) => {
    const [t, s] = entry.toLowerCase().split("/");
    return (t === "*" || t === type) && (s === "*" || s === subtype);
  });
}

/** The resource API Gateway routes a path to: per segment, literal before `{param}` before `{proxy+}`; undefined when none matches. */
export function matchResource(resourcePaths: Iterable<string>, path: string): ResourceMatch | undefined {
  const segments = path.split("/").filter(Boolean);
  let best: { resource: string; params: Record<string, string>; rank: number[] } | undefined;
  for (const resource of resourcePaths) {
    const parts = resource.split("/").filter(Boolean);
    const params: Record<string, string> = {};
    const rank: number[] = [];
    let matched = true;
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      const greedy = /^\{(\w+)\+\}$/.exec(part);
      if (greedy) {
        const rest = segments.slice(i);
        matched = i === parts.length - 1 && rest.length > 0;
        if (matched) params[greedy[1]!] = rest.join("/");
        rank.push(0);
        break;
      }
      const segment = segments[i];
      if (segment === undefined) {
        matched = false;
        break;
      }
      const param = /^\{(\w+)\}$/.exec(part);
      if (param) {
        params[param[1]!] = segment;
        rank.push(1);
      } else if (part === segment) {
        rank.push(2);
      } else {
        matched = false;
        break;
      }
    }
    if (!matched) continue;
    if (!parts.at(-1)?.endsWith("+}") && parts.length !== segments.length) continue;
    if (!best || compareRank(rank, best.rank) > 0) best = { resource, params, rank };
  }
  if (!best) return undefined;
  return { resource: best.resource, pathParameters: Object.keys(best.params).length > 0 ? best.params : null };
}

function compareRank(a: number[], b: number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? -1) - (b[i] ?? -1);
    if (d !== 0) return d;
  }
  return 0;
}

/** `09/Apr/2015:12:34:56 +0000`, the format of requestContext.requestTime. */
function apiGatewayTime(d: Date): string {
  const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const p = (n: number) => String(n).padStart(2, "0");
  return `${p(d.getUTCDate())}/${months[d.getUTCMonth()]}/${d.getUTCFullYear()}:${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}
