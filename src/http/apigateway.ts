/**
 * The edge between API Gateway (REST API, Lambda proxy integration) and the route pipeline.
 * Buffered groups return a proxy result; streaming groups use Lambda response streaming
 * (middy's streamifyResponse), which API Gateway passes through in STREAM transfer mode.
 */
import { Readable } from "node:stream";
import middy from "@middy/core";
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from "aws-lambda";
import { lambdaObservability } from "../observability/lambda.js";
import type { DaemonRequest } from "./daemon-request.js";
import type { DaemonResponse } from "./daemon-response.js";
import { type DaemonKeySource, serve } from "./pipeline.js";
import type { Router } from "./router.js";

/** What a handler needs once its daemon is ready (built lazily at cold start). */
export interface RouteGroupRuntime {
  router: Router;
  daemonKey: DaemonKeySource;
}

/**
 * Bodies the local daemon hands over as they arrived: API Gateway must carry a body as a
 * (base64) string in the event, but in-process there is no reason to encode it and decode it again.
 */
const localBodies = new WeakMap<APIGatewayProxyEvent, Buffer | Readable>();

/** Attaches the raw body (a Buffer, or the request stream for uploads) to a locally built event. */
export function withLocalBody(event: APIGatewayProxyEvent, body: Buffer | Readable): APIGatewayProxyEvent {
  localBodies.set(event, body);
  return event;
}

export function toDaemonRequest(event: APIGatewayProxyEvent): DaemonRequest {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(event.headers ?? {})) {
    if (value !== undefined) headers[name.toLowerCase()] = value;
  }
  const query = new URLSearchParams();
  const multi = event.multiValueQueryStringParameters;
  if (multi) {
    for (const [name, values] of Object.entries(multi)) for (const v of values ?? []) query.append(name, v);
  } else {
    for (const [name, value] of Object.entries(event.queryStringParameters ?? {})) {
      if (value !== undefined) query.append(name, value);
    }
  }
  const local = localBodies.get(event);
  const body = local
    ? Buffer.isBuffer(local)
      ? local
      : Buffer.alloc(0)
    : event.body
      ? Buffer.from(event.body, event.isBase64Encoded ? "base64" : "utf8")
      : Buffer.alloc(0);
  return {
    method: event.httpMethod.toUpperCase(),
    path: event.path,
    params: {},
    query,
    headers,
    body,
    ...(local && !Buffer.isBuffer(local) && { bodyStream: local }),
    sourceIp: event.requestContext?.identity?.sourceIp,
  };
}

async function drain(body: AsyncIterable<Uint8Array | string>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of body) parts.push(typeof chunk === "string" ? Buffer.from(chunk) : Buffer.from(chunk));
  return Buffer.concat(parts);
}

/** Raw response bytes of results answered to a locally built event (no base64 on the way out either). */
const localResults = new WeakMap<APIGatewayProxyResult, Uint8Array>();

/** The raw bytes of a `bytes` result built for the local daemon, if it is one. */
export const localResultBytes = (result: APIGatewayProxyResult): Uint8Array | undefined => localResults.get(result);

export async function toProxyResult(res: DaemonResponse, local = false): Promise<APIGatewayProxyResult> {
  if (local && res.kind === "bytes") {
    const result = { statusCode: res.status, headers: res.headers, body: "" };
    localResults.set(result, res.body);
    return result;
  }
  switch (res.kind) {
    case "json":
      return {
        statusCode: res.status,
        headers: { "content-type": "application/json; charset=utf-8", ...res.headers },
        body: JSON.stringify(res.body),
      };
    case "bytes":
      return {
        statusCode: res.status,
        headers: res.headers,
        body: Buffer.from(res.body).toString("base64"),
        isBase64Encoded: true,
      };
    case "stream":
      return { statusCode: res.status, headers: res.headers, body: (await drain(res.body)).toString("utf8") };
  }
}

/** A buffered API Gateway handler serving one route group. */
export function bufferedHandler(ready: () => Promise<RouteGroupRuntime>) {
  return middy(async (event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> => {
    const { router, daemonKey } = await ready();
    return toProxyResult(await serve(router, toDaemonRequest(event), daemonKey), localBodies.has(event));
  }).use(lambdaObservability());
}

interface StreamingResult {
  statusCode: number;
  headers: Record<string, string>;
  body: Readable;
}

/**
 * Waits for a stream's first chunk before the response starts. Upstream sends no headers until
 * the plugin's first output, and Dify's first-token timeout (a read timeout on the response)
 * relies on that: headers sent early would satisfy it before the model said anything.
 */
async function afterFirstChunk<T>(body: AsyncIterable<T>): Promise<AsyncIterable<T>> {
  const iterator = body[Symbol.asyncIterator]();
  const first = await iterator.next();
  return {
    async *[Symbol.asyncIterator]() {
      try {
        if (first.done) return;
        yield first.value;
        for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
      } finally {
        await iterator.return?.();
      }
    },
  };
}

/**
 * What the local daemon calls instead of the Lambda entry of a streaming handler: the same route
 * pipeline on the same event, answering the DaemonResponse itself. The local server writes it to
 * the socket directly; through the Lambda entry every answer would become a Node stream piped
 * into another (stream.pipeline, an AbortController and a Readable per answer), for a middleware
 * that does nothing outside Lambda (lambdaObservability).
 */
export interface LocalEntry {
  local(event: APIGatewayProxyEvent): Promise<DaemonResponse>;
}

/** A response-streaming handler: the body is piped to the client as the plugin produces it. */
export function streamingHandler(ready: () => Promise<RouteGroupRuntime>) {
  const answer = async (event: APIGatewayProxyEvent): Promise<DaemonResponse> => {
    const { router, daemonKey } = await ready();
    // Awaited, not returned: an async function resolving with a promise takes two turns more.
    return await serve(router, toDaemonRequest(event), daemonKey);
  };
  const handler = middy(
    async (event: APIGatewayProxyEvent): Promise<StreamingResult> => {
      const res = await answer(event);
      switch (res.kind) {
        case "stream": {
          // The Lambda runtime's stream is given bytes (the local daemon calls `local` instead).
          const chunks = await afterFirstChunk(res.body);
          return { statusCode: res.status, headers: res.headers, body: Readable.from(chunks, { objectMode: false }) };
        }
        case "bytes":
          return { statusCode: res.status, headers: res.headers, body: Readable.from([Buffer.from(res.body)]) };
        case "json":
          return {
            statusCode: res.status,
            headers: { "content-type": "application/json; charset=utf-8", ...res.headers },
            body: Readable.from([JSON.stringify(res.body)]),
          };
      }
    },
    { streamifyResponse: true },
  ).use(lambdaObservability());
  return Object.assign(handler, { local: answer } satisfies LocalEntry);
}
