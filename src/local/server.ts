/**
 * The local daemon's HTTP server: each request becomes the API Gateway event the Lambda
 * handlers receive on AWS and goes to the same handler module, buffered or streaming.
 */
import "./awslambda-shim.js";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { Writable } from "node:stream";
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from "aws-lambda";
import type { Daemon } from "../daemon.js";
import { routerFor, streamingGroups, type RouteGroup } from "../routes/groups.js";
import type { LocalResponseStream } from "./awslambda-shim.js";
import { logger } from "../logger.js";

type BufferedHandler = (event: APIGatewayProxyEvent, context: Context) => Promise<APIGatewayProxyResult>;
type StreamingHandler = (event: APIGatewayProxyEvent, stream: LocalResponseStream, context: Context) => Promise<void>;

const handlerModules: Record<RouteGroup, () => Promise<{ handler: unknown }>> = {
  management: () => import("../../functions/management.js"),
  dispatch: () => import("../../functions/dispatch.js"),
  "public-endpoint": () => import("../../functions/public-endpoint.js"),
  "backwards-invocation": () => import("../../functions/backwards-invocation.js"),
};

/** Handler modules once loaded: a dynamic import per request costs more than the request. */
const loadedHandlers: Partial<Record<RouteGroup, Promise<unknown>>> = {};

/** Groups tried in order; management last because it answers unknown routes with upstream's 404. */
const lookupOrder: RouteGroup[] = ["dispatch", "public-endpoint", "backwards-invocation", "management"];
const streaming = new Set<RouteGroup>(streamingGroups);

export interface LocalServerOptions {
  host: string;
  port: number;
  /** Requests with bodies above this are refused before reaching a handler. */
  maxBodyBytes: number;
}

export async function startLocalServer(daemon: Daemon, options: LocalServerOptions): Promise<Server> {
  const server = createServer((req, res) => {
    handle(daemon, req, res, options).catch((err: unknown) => {
      logger.error({ err }, "request failed");
      if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" });
      res.end();
    });
  });
  server.keepAliveTimeout = 65_000;
  server.requestTimeout = 0;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => resolve());
  });
  return server;
}

async function handle(daemon: Daemon, req: IncomingMessage, res: ServerResponse, options: LocalServerOptions) {
  const body = await readBody(req, options.maxBodyBytes);
  if (!body) {
    res.writeHead(413, { "content-type": "application/json" });
    res.end(JSON.stringify({ code: -400, message: JSON.stringify({ message: "request body too large", error_type: "PluginDaemonBadRequestError", args: null }), data: null }));
    return;
  }
  const url = new URL(req.url ?? "/", "http://localhost");
  const group = lookupOrder.find((g) => routerFor(daemon, g).match(req.method ?? "GET", url.pathname)) ?? "management";
  const event = toEvent(req, url, body);
  const handler = await (loadedHandlers[group] ??= handlerModules[group]().then((m) => m.handler));
  const context = localContext();
  if (streaming.has(group)) {
    await (handler as StreamingHandler)(event, responseStream(res), context);
  } else {
    const result = await (handler as BufferedHandler)(event, context);
    res.writeHead(result.statusCode, result.headers as Record<string, string>);
    res.end(result.isBase64Encoded ? Buffer.from(result.body, "base64") : result.body);
  }
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) tooLarge = true;
      else parts.push(chunk);
    });
    req.on("end", () => resolve(tooLarge ? undefined : Buffer.concat(parts)));
    req.on("error", reject);
  });
}

function toEvent(req: IncomingMessage, url: URL, body: Buffer): APIGatewayProxyEvent {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  const multiValueQueryStringParameters: Record<string, string[]> = {};
  for (const [name, value] of url.searchParams) (multiValueQueryStringParameters[name] ??= []).push(value);
  return {
    httpMethod: req.method ?? "GET",
    path: url.pathname,
    resource: "/{proxy+}",
    headers,
    multiValueHeaders: {},
    queryStringParameters: null,
    multiValueQueryStringParameters,
    pathParameters: null,
    stageVariables: null,
    body: body.length ? body.toString("base64") : null,
    isBase64Encoded: true,
    requestContext: { identity: { sourceIp: req.socket.remoteAddress ?? "" } } as APIGatewayProxyEvent["requestContext"],
  };
}

/** Sends status and headers with the first body bytes, so a stream that errors early can still choose them. */
function responseStream(res: ServerResponse): LocalResponseStream {
  let prelude: { statusCode?: number; headers?: Record<string, string> } = {};
  const sendHead = () => {
    if (!res.headersSent) res.writeHead(prelude.statusCode ?? 200, prelude.headers ?? {});
  };
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      sendHead();
      // Take the next chunk as soon as the socket accepts this one; wait only for backpressure.
      if (res.write(chunk)) callback();
      else res.once("drain", () => callback());
    },
    final(callback) {
      sendHead();
      res.end(callback);
    },
  }) as LocalResponseStream;
  stream.setPrelude = (p) => {
    prelude = p;
  };
  res.on("close", () => {
    if (!res.writableFinished) stream.destroy();
  });
  return stream;
}

function localContext(): Context {
  return { awsRequestId: crypto.randomUUID(), functionName: "local" } as Context;
}
