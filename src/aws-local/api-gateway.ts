/**
 * API Gateway (REST API, Lambda proxy integrations) on this machine, serving the model a stack
 * defines (rest-api-model.ts) under its stage path, as `https://<id>.execute-api…/<stage>`:
 * - routes by the stack's resources and methods, most specific resource first; no resource or no
 *   such method is the gateway's MISSING_AUTHENTICATION_TOKEN answer (customised by the stack);
 * - builds the REST proxy event (rest-api-event.ts: binary media types base64-encoded) and
 *   invokes the integration's function through the real LambdaClient: Invoke for buffered
 *   methods, InvokeWithResponseStream for STREAM ones (the HTTP prelude the function writes is
 *   parsed for status and headers, the rest passed through as it arrives);
 * - API Gateway's limits: 10 MB request payload (REQUEST_TOO_LARGE), the integration timeout
 *   (29 s buffered: INTEGRATION_TIMEOUT), a streamed answer silent for 5 minutes is cut, the
 *   stage's throttling (THROTTLED); a request Lambda refuses (an event over 6 MB), a function
 *   error or a malformed answer is DEFAULT_5XX;
 * - a buffered base64 answer is decoded only when the request's first Accept type is a binary
 *   media type, as API Gateway does (otherwise the client gets the base64 text).
 */
import { randomBytes, randomUUID } from "node:crypto";
import { Agent, createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import {
  InvokeCommand,
  type InvokeCommandOutput,
  InvokeWithResponseStreamCommand,
  type InvokeWithResponseStreamCommandOutput,
  LambdaClient,
} from "@aws-sdk/client-lambda";
import type { APIGatewayProxyResult } from "aws-lambda";
import { isBinaryMediaType, matchResource, type RestApiEventSettings, restApiEvent } from "./rest-api-event.js";
import type { GatewayResponse, Integration, RestApiModel } from "./rest-api-model.js";
import { ACCOUNT, REGION } from "./template-values.js";

/** API Gateway's hard limits for REST APIs. */
export const API_GATEWAY_LIMITS = {
  maxRequestBytes: 10 * 1024 * 1024,
  streamIdleMs: 5 * 60_000,
};

export interface ApiGatewayOptions {
  model: RestApiModel;
  apiId: string;
  /** The Lambda service's endpoint. */
  lambdaEndpoint: string;
  host: string;
  port: number;
  limits?: Partial<typeof API_GATEWAY_LIMITS>;
  /** One entry per request, as the stage's access log has it. */
  onAccess?: (entry: AccessLogEntry) => void;
}

export interface AccessLogEntry {
  requestId: string;
  httpMethod: string;
  path: string;
  resourcePath: string | undefined;
  status: number;
  responseLatency: number;
  integrationError?: string;
}

const HTTP_INTEGRATION = "application/vnd.awslambda.http-integration-response";
const PRELUDE_DELIMITER = Buffer.alloc(8);

/** Answers the gateway gives itself when the stack does not customise them. */
const DEFAULT_RESPONSES: Record<string, GatewayResponse> = {
  MISSING_AUTHENTICATION_TOKEN: { status: 403, body: '{"message":"Missing Authentication Token"}', headers: {} },
  REQUEST_TOO_LARGE: { status: 413, body: '{"message":"Request Too Long"}', headers: {} },
  INTEGRATION_TIMEOUT: { status: 504, body: '{"message": "Endpoint request timed out"}', headers: {} },
  THROTTLED: { status: 429, body: '{"message":"Too Many Requests"}', headers: {} },
  DEFAULT_5XX: { status: 502, body: '{"message": "Internal server error"}', headers: {} },
};

class GatewayAnswer extends Error {
  constructor(
    readonly type: keyof typeof DEFAULT_RESPONSES,
    readonly detail?: string,
  ) {
    super(type);
  }
}

export interface LocalApiGateway {
  /** The stage URL, e.g. http://127.0.0.1:5002/prod. */
  url: string;
  close(): Promise<void>;
}

export async function startApiGateway(options: ApiGatewayOptions): Promise<LocalApiGateway> {
  const limits = { ...API_GATEWAY_LIMITS, ...options.limits };
  const lambda = new LambdaClient({
    endpoint: options.lambdaEndpoint,
    region: REGION,
    credentials: { accessKeyId: "apigateway", secretAccessKey: "apigateway" },
    // API Gateway calls the function once; a refusal is an answer, not something to retry.
    maxAttempts: 1,
    requestHandler: { httpAgent: new Agent({ keepAlive: true, maxSockets: 512 }) },
  });
  const eventSettings: RestApiEventSettings = {
    stage: options.model.stage,
    binaryMediaTypes: options.model.binaryMediaTypes,
    resourcePaths: [...options.model.resources.keys()],
    apiId: options.apiId,
    region: REGION,
    accountId: ACCOUNT,
  };
  const bucket = tokenBucket(options.model.throttling.rateLimit, options.model.throttling.burstLimit);
  const context: GatewayContext = { options, limits, lambda, eventSettings, bucket };
  const server = createServer((req, res) => void serve(context, req, res));
  server.requestTimeout = 0;
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, resolve);
  });
  const { port } = server.address() as AddressInfo;
  const host = options.host === "0.0.0.0" || options.host === "::" ? "127.0.0.1" : options.host;
  return {
    url: `http://${host}:${port}/${options.model.stage}`,
    close: () => closeServer(server, lambda),
  };
}

interface GatewayContext {
  options: ApiGatewayOptions;
  limits: typeof API_GATEWAY_LIMITS;
  lambda: LambdaClient;
  eventSettings: RestApiEventSettings;
  bucket: () => boolean;
}

async function closeServer(server: Server, lambda: LambdaClient): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  lambda.destroy();
}

async function serve(ctx: GatewayContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const started = Date.now();
  const requestId = randomUUID();
  const method = (req.method ?? "GET").toUpperCase();
  const target = new URL(req.url ?? "/", "http://gateway.local");
  const stagePrefix = `/${ctx.options.model.stage}`;
  const path =
    target.pathname === stagePrefix
      ? "/"
      : target.pathname.startsWith(`${stagePrefix}/`)
        ? target.pathname.slice(stagePrefix.length)
        : undefined;
  let resourcePath: string | undefined;
  let integrationError: string | undefined;
  res.once("close", () =>
    ctx.options.onAccess?.({
      requestId,
      httpMethod: method,
      path: target.pathname,
      resourcePath,
      status: res.statusCode,
      responseLatency: Date.now() - started,
      ...(integrationError && { integrationError }),
    }),
  );
  res.setHeader("x-amzn-RequestId", requestId);
  res.setHeader("x-amz-apigw-id", randomBytes(6).toString("base64url"));
  try {
    if (path === undefined) {
      // A path outside the deployed stage: API Gateway's answer for an unknown stage.
      req.resume();
      res.writeHead(403, { "content-type": "application/json", "x-amzn-ErrorType": "ForbiddenException" });
      res.end('{"message":"Forbidden"}');
      return;
    }
    if (!ctx.bucket()) throw new GatewayAnswer("THROTTLED");
    const match = matchResource(ctx.eventSettings.resourcePaths, path);
    const methods = match ? ctx.options.model.resources.get(match.resource) : undefined;
    const integration = methods?.get(method) ?? methods?.get("ANY");
    if (!match || !integration) throw new GatewayAnswer("MISSING_AUTHENTICATION_TOKEN");
    resourcePath = match.resource;
    const body = await readBody(req, ctx.limits.maxRequestBytes);
    const event = restApiEvent(
      {
        method,
        path: `${path}${target.search}`,
        headers: rawHeaders(req),
        body: body.length > 0 ? body : undefined,
        sourceIp: req.socket.remoteAddress ?? "127.0.0.1",
      },
      ctx.eventSettings,
      match,
    );
    const payload = new TextEncoder().encode(JSON.stringify(event));
    if (integration.streaming) await streamed(ctx, integration, payload, res);
    else await buffered(ctx, integration, payload, req, res);
  } catch (err) {
    const answer = err instanceof GatewayAnswer ? err : new GatewayAnswer("DEFAULT_5XX", (err as Error).message);
    integrationError = answer.detail;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (!req.complete) req.resume();
    const response = ctx.options.model.gatewayResponses.get(answer.type) ?? DEFAULT_RESPONSES[answer.type]!;
    res.writeHead(response.status, {
      "content-type": "application/json",
      ...response.headers,
      "x-amzn-ErrorType": answer.type,
    });
    res.end(response.body);
  }
}

async function buffered(
  ctx: GatewayContext,
  integration: Integration,
  payload: Uint8Array,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), integration.timeoutMs);
  let out: InvokeCommandOutput;
  try {
    out = await ctx.lambda.send(
      new InvokeCommand({
        FunctionName: integration.functionName,
        InvocationType: "RequestResponse",
        Payload: payload,
      }),
      { abortSignal: abort.signal },
    );
  } catch (err) {
    if (abort.signal.aborted)
      throw new GatewayAnswer("INTEGRATION_TIMEOUT", `no answer within ${integration.timeoutMs} ms`);
    throw new GatewayAnswer(
      "DEFAULT_5XX",
      `Lambda refused the invocation: ${(err as Error).name}: ${(err as Error).message}`,
    );
  } finally {
    clearTimeout(timer);
  }
  const text = out.Payload ? Buffer.from(out.Payload).toString("utf8") : "";
  if (out.FunctionError) throw new GatewayAnswer("DEFAULT_5XX", `function error: ${text.slice(0, 500)}`);
  let result: APIGatewayProxyResult;
  try {
    result = JSON.parse(text) as APIGatewayProxyResult;
    if (typeof result.statusCode !== "number") throw new Error("no statusCode");
  } catch (err) {
    throw new GatewayAnswer("DEFAULT_5XX", `malformed Lambda proxy response: ${(err as Error).message}`);
  }
  const headers = mergedHeaders(result.headers, result.multiValueHeaders);
  const accept = String(req.headers.accept ?? "")
    .split(",")[0]!
    .trim();
  const binary =
    result.isBase64Encoded === true && accept !== "" && isBinaryMediaType(accept, ctx.options.model.binaryMediaTypes);
  const body = binary ? Buffer.from(result.body ?? "", "base64") : Buffer.from(result.body ?? "", "utf8");
  if (!Object.keys(headers).some((h) => h.toLowerCase() === "content-type"))
    headers["content-type"] = "application/json";
  res.writeHead(result.statusCode, headers);
  res.end(body);
}

async function streamed(
  ctx: GatewayContext,
  integration: Integration,
  payload: Uint8Array,
  res: ServerResponse,
): Promise<void> {
  const abort = new AbortController();
  const total = setTimeout(() => abort.abort(), integration.timeoutMs);
  res.once("close", () => abort.abort());
  let idle: NodeJS.Timeout | undefined;
  const stillAlive = () => {
    clearTimeout(idle);
    idle = setTimeout(() => abort.abort(), ctx.limits.streamIdleMs);
  };
  try {
    stillAlive();
    let out: InvokeWithResponseStreamCommandOutput;
    try {
      out = await ctx.lambda.send(
        new InvokeWithResponseStreamCommand({
          FunctionName: integration.functionName,
          InvocationType: "RequestResponse",
          Payload: payload,
        }),
        {
          abortSignal: abort.signal,
        },
      );
    } catch (err) {
      if (abort.signal.aborted) throw new GatewayAnswer("INTEGRATION_TIMEOUT", "no answer before the stream timeout");
      throw new GatewayAnswer(
        "DEFAULT_5XX",
        `Lambda refused the invocation: ${(err as Error).name}: ${(err as Error).message}`,
      );
    }
    const withPrelude = out.ResponseStreamContentType === HTTP_INTEGRATION;
    let pending: Buffer | undefined = withPrelude ? Buffer.alloc(0) : undefined;
    if (!withPrelude)
      res.writeHead(200, { "content-type": out.ResponseStreamContentType ?? "application/octet-stream" });
    for await (const event of out.EventStream ?? []) {
      if (abort.signal.aborted) break;
      if (event.PayloadChunk?.Payload) {
        stillAlive();
        let bytes: Buffer = Buffer.from(event.PayloadChunk.Payload);
        if (pending !== undefined) {
          pending = Buffer.concat([pending, bytes]);
          const end = pending.indexOf(PRELUDE_DELIMITER);
          if (end < 0) continue;
          writePrelude(res, pending.subarray(0, end));
          bytes = pending.subarray(end + PRELUDE_DELIMITER.length);
          pending = undefined;
        }
        if (bytes.length > 0 && !res.write(bytes)) await new Promise((resolve) => res.once("drain", resolve));
      } else if (event.InvokeComplete) {
        if (event.InvokeComplete.ErrorCode)
          throw new GatewayAnswer(
            "DEFAULT_5XX",
            `function error: ${event.InvokeComplete.ErrorCode} ${event.InvokeComplete.ErrorDetails ?? ""}`,
          );
        break;
      }
    }
    if (abort.signal.aborted && !res.writableEnded) {
      // API Gateway cuts a stream at its timeout or after 5 minutes of silence.
      res.destroy();
      return;
    }
    if (pending !== undefined)
      throw new GatewayAnswer("DEFAULT_5XX", "the function's stream ended inside its HTTP prelude");
    res.end();
  } finally {
    clearTimeout(total);
    clearTimeout(idle);
  }
}

function writePrelude(res: ServerResponse, json: Buffer): void {
  let prelude: {
    statusCode?: number;
    headers?: Record<string, string>;
    multiValueHeaders?: Record<string, string[]>;
    cookies?: string[];
  };
  try {
    prelude = JSON.parse(json.toString("utf8")) as typeof prelude;
  } catch {
    throw new GatewayAnswer("DEFAULT_5XX", "malformed HTTP prelude in the function's stream");
  }
  const headers = mergedHeaders(prelude.headers, prelude.multiValueHeaders);
  if (prelude.cookies?.length) headers["set-cookie"] = prelude.cookies;
  res.writeHead(prelude.statusCode ?? 200, headers);
}

function mergedHeaders(
  single: Record<string, unknown> | undefined,
  multi: Record<string, unknown[]> | undefined,
): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(single ?? {})) headers[name] = String(value);
  for (const [name, values] of Object.entries(multi ?? {})) headers[name] = values.map(String);
  return headers;
}

/** Header names in the client's case, repeated headers as arrays. */
function rawHeaders(req: IncomingMessage): Record<string, string[]> {
  const headers: Record<string, string[]> = {};
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2)
    (headers[req.rawHeaders[i]!] ??= []).push(req.rawHeaders[i + 1]!);
  return headers;
}

async function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > maxBytes) throw new GatewayAnswer("REQUEST_TOO_LARGE");
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw new GatewayAnswer("REQUEST_TOO_LARGE");
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** The stage's throttling: `rate` requests a second on average, bursts up to `burst`. */
function tokenBucket(rate: number, burst: number): () => boolean {
  let tokens = burst;
  let last = Date.now();
  return () => {
    const now = Date.now();
    tokens = Math.min(burst, tokens + ((now - last) / 1000) * rate);
    last = now;
    if (tokens < 1) return false;
    tokens -= 1;
    return true;
  };
}
