/**
 * The local daemon's HTTP server: each request becomes the API Gateway event the Lambda
 * handlers receive on AWS and goes to the same handler module, buffered or streaming (a streaming
 * module's `local` entry: its route pipeline, whose answer is written to the socket here).
 *
 * Before a byte of the body is read the route is known and the daemon key checked: unknown
 * routes get upstream's 404 and callers without the key a 401 at once. The body is then read
 * under its route's cap (body-policy.ts) and handed over as it arrived (a Buffer, or the request
 * stream for uploads), not base64-encoded into the event and decoded again.
 */
import "./awslambda-shim.js";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Readable } from "node:stream";
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from "aws-lambda";
import type { Daemon } from "../daemon.js";
import { errorEnvelope } from "../domain/envelope.js";
import { DaemonError, internalError, unauthorized } from "../domain/errors.js";
import { type LocalEntry, localResultBytes, withLocalBody } from "../http/apigateway.js";
import { type DaemonResponse, fail } from "../http/daemon-response.js";
import { keyAccepted, routeNotFound } from "../http/pipeline.js";
import type { Route } from "../http/router.js";
import { logger } from "../logger.js";
import { finishRequest, rememberRoute, trackRequest } from "../observability/local-requests.js";
import { answerScrape, enablePrometheus } from "../observability/metrics-endpoint.js";
import { lookupOrder, type RouteGroup, routerFor, streamingGroups } from "../routes/groups.js";
import { type BodyPolicy, bodyPolicyFor } from "./body-policy.js";
import { type BodyFailure, declaredLength, guardedBody, requestBody } from "./request-body.js";
import { runInRequestScope } from "./request-scope.js";

type BufferedHandler = (event: APIGatewayProxyEvent, context: Context) => Promise<APIGatewayProxyResult>;

const handlerModules: Record<RouteGroup, () => Promise<{ handler: unknown }>> = {
  management: () => import("../../functions/management.js"),
  dispatch: () => import("../../functions/dispatch.js"),
  "public-endpoint": () => import("../../functions/public-endpoint.js"),
  "backwards-invocation": () => import("../../functions/backwards-invocation.js"),
};

/**
 * Each group's handler once its module has loaded: a dynamic import per request costs more than
 * the request, and later requests take it without waiting a turn.
 */
const loadedHandlers: Partial<Record<RouteGroup, unknown>> = {};

const streaming = new Set<RouteGroup>(streamingGroups);

export interface LocalServerOptions {
  host: string;
  port: number;
  /** An upper bound on every route's body cap (the routes' own caps come from the configuration). */
  maxBodyBytes?: number;
}

interface ServerState {
  daemon: Daemon;
  options: LocalServerOptions;
  uploadsInFlight: number;
}

export async function startLocalServer(daemon: Daemon, options: LocalServerOptions): Promise<Server> {
  const state: ServerState = { daemon, options, uploadsInFlight: 0 };
  enablePrometheus({ enabled: daemon.config.prometheusEnabled });
  const server = createServer((req, res) => serveRequest(state, req, res, false));
  // `Expect: 100-continue` (curl sends it for large bodies): refuse before the client sends the body.
  server.on("checkContinue", (req, res) => serveRequest(state, req, res, true));
  server.on("clientError", (err: NodeJS.ErrnoException, socket: Socket) => answerClientError(err, socket));
  server.keepAliveTimeout = 65_000;
  // Streams may run for the whole execution timeout; slow bodies are bounded by the idle timeout.
  server.requestTimeout = 0;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => resolve());
  });
  return server;
}

function serveRequest(state: ServerState, req: IncomingMessage, res: ServerResponse, expectsContinue: boolean): void {
  const started = performance.now();
  const method = req.method ?? "GET";
  const target = req.url ?? "/";
  res.once("close", () => logRequest(method, target, res, req, started));
  const scope = {
    method,
    path: target.split("?")[0] ?? "/",
    fail: (err: unknown) => failRequest(res, err),
  };
  runInRequestScope(scope, () => {
    handle(state, req, res, method, target, expectsContinue).catch((err: unknown) => {
      logger.error({ err, method, path: scope.path }, "request failed");
      failRequest(res, err);
    });
  });
}

async function handle(
  state: ServerState,
  req: IncomingMessage,
  res: ServerResponse,
  method: string,
  target: string,
  expectsContinue: boolean,
) {
  const { daemon, options } = state;
  const url = parseTarget(target);
  trackRequest(res);
  if (!url) return refuse(req, res, fail(badInput("malformed request target"), 400));
  const scrape = answerScrape(method, url.pathname, res);
  if (scrape) return scrape;
  const found = findRoute(daemon, method, url.pathname);
  if (!found) return refuse(req, res, routeNotFound());
  rememberRoute(res, found);
  if (!found.route.public) {
    const accepted = keyAccepted(headerValue(req, "x-api-key"), daemon.daemonKey);
    if (accepted !== true && !(await accepted)) return refuse(req, res, fail(unauthorized(), 401));
  }
  const policy = bodyPolicyFor(found.route, daemon.config, options.maxBodyBytes);
  const declared = declaredLength(req);
  if (declared !== undefined && declared > policy.maxBytes) return refuse(req, res, tooLarge(policy));
  if (policy.upload) {
    const max = daemon.config.maxConcurrentUploads;
    if (state.uploadsInFlight >= max) {
      const busy = new DaemonError(
        "PluginDaemonInternalServerError",
        `server is busy: ${max} uploads in progress, at most ${max} at a time; try again later`,
      );
      return refuse(req, res, { ...fail(busy, 503), headers: { "retry-after": "1" } });
    }
    state.uploadsInFlight += 1;
    res.once("close", () => (state.uploadsInFlight -= 1));
  }
  if (expectsContinue) res.writeContinue();

  const idleMs = daemon.config.requestBodyIdleTimeoutMs;
  let body: Buffer | Readable;
  if (policy.upload) {
    body = guardedBody(req, policy.maxBytes, idleMs, { tooLarge: policy.tooLargeMessage });
  } else {
    const read = await requestBody(req, policy.maxBytes, idleMs);
    if (!read.ok) return refuseBody(req, res, read.failure, policy);
    body = read.body;
  }

  const event = withLocalBody(toEvent(req, url), body);
  const handler = (loadedHandlers[found.group] ??= (await handlerModules[found.group]()).handler);
  if (streaming.has(found.group)) {
    await answerStreamed(req, res, await (handler as LocalEntry).local(event));
  } else {
    const result = await (handler as BufferedHandler)(event, localContext());
    discardUnread(req, res);
    res.writeHead(result.statusCode, result.headers as Record<string, string>);
    res.end(localResultBytes(result) ?? (result.isBase64Encoded ? Buffer.from(result.body, "base64") : result.body));
  }
}

function findRoute(daemon: Daemon, method: string, path: string): { group: RouteGroup; route: Route } | undefined {
  for (const group of lookupOrder) {
    const route = routerFor(daemon, group).find(method, path);
    if (route) return { group, route };
  }
  return undefined;
}

type Target = Pick<URL, "pathname" | "searchParams">;

/**
 * A target the URL parser gives back as it is: plain path characters (percent-escapes left as
 * they are), no segment starting with a dot (`.`/`..` are resolved, `%2e` too), no query.
 */
const PLAIN_TARGET = /^\/[A-Za-z0-9\-_~!$&'()*+,;=:@/%.]*$/;
const NO_QUERY = new URLSearchParams();

/** The path and query of the request line; a leading `//` stays a path, never a host. */
function parseTarget(target: string): Target | undefined {
  if (PLAIN_TARGET.test(target) && !target.includes("/.") && !/%2e/i.test(target)) {
    return { pathname: target, searchParams: NO_QUERY };
  }
  try {
    return new URL(`http://localhost${target.startsWith("/") ? "" : "/"}${target}`);
  } catch {
    return undefined;
  }
}

const badInput = (message: string) => new DaemonError("PluginDaemonBadRequestError", message);

const tooLarge = (policy: BodyPolicy): DaemonResponse => fail(badInput(policy.tooLargeMessage), 413);

function refuseBody(req: IncomingMessage, res: ServerResponse, failure: BodyFailure, policy: BodyPolicy): void {
  if (failure === "too-large") return refuse(req, res, tooLarge(policy));
  // A stalled client gets its answer and the connection closes: it was not sending anyway.
  if (failure === "timeout")
    return refuse(req, res, fail(badInput("request body timed out: nothing arrived for a while"), 408), {
      close: true,
    });
  // The client went away: nobody to answer.
  res.destroy();
}

/** What is still discarded of a body answered early before its connection is cut. */
const DISCARD_MAX_BYTES = 64 * 1024 * 1024;
const DISCARD_MAX_MS = 10_000;

/**
 * Answers without reading (the rest of) the body. Clients that read while they send (curl,
 * fetch, httpx) see the answer at once; the body still on its way is discarded, not stored, up
 * to 64 MiB or 10 s, and then the connection is cut. Cutting at once (which Node does after an
 * answer to a `Connection: close` request) would reset the connection under an answer the
 * client may not have read yet.
 */
function refuse(
  req: IncomingMessage,
  res: ServerResponse,
  response: DaemonResponse,
  options: { close?: boolean } = {},
): void {
  if (res.headersSent) return void res.destroy();
  const body = response.kind === "json" ? JSON.stringify(response.body) : "";
  if (!options.close) discardUnread(req, res);
  res.writeHead(response.status, {
    "content-type": "application/json; charset=utf-8",
    ...response.headers,
    ...(options.close && { connection: "close" }),
  });
  res.end(body);
}

/**
 * Before an answer given while the body is still arriving: discard the rest, within bounds, and
 * keep the socket open for it after the answer (Node would close it at once otherwise).
 */
function discardUnread(req: IncomingMessage, res: ServerResponse): void {
  if (req.complete || req.destroyed) return;
  res.shouldKeepAlive = true;
  discardRest(req);
}

function discardRest(req: IncomingMessage): void {
  const socket = req.socket;
  let discarded = 0;
  const cut = () => socket.destroy();
  const timer = setTimeout(cut, DISCARD_MAX_MS);
  timer.unref();
  const stopTimer = () => clearTimeout(timer);
  req.on("data", (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > DISCARD_MAX_BYTES) cut();
  });
  req.once("end", () => {
    stopTimer();
    // The socket may serve many more requests: one listener per discarded body would pile up.
    socket.off("close", stopTimer);
    // The client asked to close after this request; it was kept open only for the body.
    if (/\bclose\b/i.test(headerValue(req, "connection") ?? "")) socket.end();
  });
  socket.once("close", stopTimer);
  req.resume();
}

/** An error no handler answered: upstream's envelope with -500, or a cut stream if the answer already started. */
function failRequest(res: ServerResponse, err: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const message = err instanceof DaemonError ? err.message : "internal server error";
  res.writeHead(500, { "content-type": "application/json; charset=utf-8", connection: "close" });
  res.end(JSON.stringify(errorEnvelope(internalError(message))));
}

/** Requests Node's parser refuses (bad request line, oversized headers) still get an envelope. */
function answerClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (!socket.writable || err.code === "ECONNRESET") return void socket.destroy();
  const [status, text, message] =
    err.code === "HPE_HEADER_OVERFLOW"
      ? [431, "Request Header Fields Too Large", "request headers too large"]
      : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? [408, "Request Timeout", "request timed out"]
        : [400, "Bad Request", "malformed HTTP request"];
  const body = JSON.stringify(errorEnvelope(badInput(message)));
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

/** One line per request, as upstream's gin logger writes it (method, path, status, latency). */
function logRequest(method: string, target: string, res: ServerResponse, req: IncomingMessage, started: number): void {
  const status = res.headersSent ? res.statusCode : 0;
  const entry = {
    ...finishRequest(method, target, res, started),
    method,
    path: target,
    status,
    latency_ms: Math.round(performance.now() - started),
    client_ip: req.socket.remoteAddress,
    ...(!res.writableFinished && { aborted: true }),
  };
  if (status >= 500) logger.error(entry, "HTTP request");
  else logger.info(entry, "HTTP request");
}

const headerValue = (req: IncomingMessage, name: string): string | undefined => {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
};

function toEvent(req: IncomingMessage, url: Target): APIGatewayProxyEvent {
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
    // The body travels beside the event (withLocalBody), not base64-encoded inside it.
    body: null,
    isBase64Encoded: false,
    requestContext: {
      identity: { sourceIp: req.socket.remoteAddress ?? "" },
    } as APIGatewayProxyEvent["requestContext"],
  };
}

/**
 * A streaming group's answer, written as upstream sends it: status and headers with the first
 * chunk (a stream that errors early can still choose them, and Dify's first-token timeout is not
 * satisfied by headers alone), then each chunk as the body yields it.
 */
async function answerStreamed(req: IncomingMessage, res: ServerResponse, response: DaemonResponse): Promise<void> {
  switch (response.kind) {
    case "json":
      return sendWhole(req, res, response.status, jsonHeaders(response.headers), JSON.stringify(response.body));
    case "bytes":
      return sendWhole(req, res, response.status, response.headers, response.body);
    case "stream":
      return pump(req, res, response.status, response.headers, response.body);
  }
}

const jsonHeaders = (headers?: Record<string, string>) => ({
  "content-type": "application/json; charset=utf-8",
  ...headers,
});

function sendWhole(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  headers: Record<string, string>,
  body: string | Uint8Array,
): void {
  if (res.destroyed) return;
  discardUnread(req, res);
  res.writeHead(status, headers);
  res.end(body);
}

/**
 * Copies a streamed body to the response. Chunks the body yields within one turn of the event
 * loop (the plugin's lines that arrived in one read) leave as one write: one chunk frame and one
 * system call instead of one per chunk. The body is read on only while the socket takes what it
 * is given; it is given up (and with it the plugin session) as soon as the client goes away.
 */
async function pump(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  headers: Record<string, string>,
  body: AsyncIterable<Uint8Array | string>,
): Promise<void> {
  const iterator = body[Symbol.asyncIterator]();
  let finished = false;
  let gone = false;
  let resume: (() => void) | undefined;
  const onClose = () => {
    if (res.writableFinished) return;
    gone = true;
    resume?.();
    if (!finished) {
      finished = true;
      void iterator.return?.()?.catch(() => undefined);
    }
  };
  res.once("close", onClose);
  let pending = "";
  let flushQueued = false;
  const sendHead = () => {
    if (res.headersSent) return;
    discardUnread(req, res);
    res.writeHead(status, headers);
  };
  const flush = () => {
    flushQueued = false;
    if (pending === "" || gone) return;
    const text = pending;
    pending = "";
    res.write(text);
  };
  const queue = (chunk: Uint8Array | string) => {
    sendHead();
    if (typeof chunk !== "string") {
      flush();
      res.write(chunk);
      return;
    }
    pending += chunk;
    if (!flushQueued) {
      flushQueued = true;
      process.nextTick(flush);
    }
  };
  try {
    for (;;) {
      const step = await iterator.next();
      if (gone) return;
      if (step.done) break;
      queue(step.value);
      if (res.writableNeedDrain) {
        await new Promise<void>((resolve) => {
          resume = resolve;
          res.once("drain", resolve);
        });
        res.off("drain", resume as () => void);
        resume = undefined;
        if (gone) return;
      }
    }
    finished = true;
    sendHead();
    const last = pending;
    pending = "";
    res.end(last);
  } catch (err) {
    finished = true;
    flush();
    throw err;
  } finally {
    res.off("close", onClose);
  }
}

function localContext(): Context {
  return { awsRequestId: crypto.randomUUID(), functionName: "local" } as Context;
}
