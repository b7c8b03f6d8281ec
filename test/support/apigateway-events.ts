/**
 * Lambda proxy events as API Gateway's REST API (payload format 1.0) builds them for the daemon's
 * API (infra/constructs/api.ts), built by src/aws-local/rest-api-event.ts: a Regional endpoint, a stage, and binary media type `*` + `/*`,
 * so every request body whose Content-Type matches arrives base64-encoded with
 * `isBase64Encoded: true` (a multipart package upload included); a body whose Content-Type does
 * not match a binary media type arrives as text.
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
 * - a GET may carry a body (Dify sends `GET .../decode/from_identifier` with JSON), which a
 *   Regional REST API passes on like any other;
 * - a request that matches no resource, or a resource without that method, never reaches Lambda
 *   (the gateway answers itself): building such an event throws.
 *
 * Also the other half of a streamed answer: `streamingResponse()` is the response stream the
 * Lambda runtime hands a `streamifyResponse` handler (with the local shim's `setPrelude`).
 */
import { randomBytes, randomUUID } from "node:crypto";
import { Writable } from "node:stream";
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from "aws-lambda";
import { restApiEvent as buildEvent, matchResource, type RestRequest } from "../../src/aws-local/rest-api-event.js";
import type { LocalResponseStream } from "../../src/local/awslambda-shim.js";

type Methods = readonly string[];
const ANY: Methods = ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"];

/** The resource tree of infra/constructs/api.ts: resource path → methods (empty: no method). */
export const DAEMON_API_RESOURCES: Readonly<Record<string, Methods>> = {
  "/": ANY,
  "/{proxy+}": ANY,
  "/plugin": [],
  "/plugin/{tenant_id}": [],
  "/plugin/{tenant_id}/management": [],
  "/plugin/{tenant_id}/management/{proxy+}": ANY,
  "/plugin/{tenant_id}/endpoint": [],
  "/plugin/{tenant_id}/endpoint/{proxy+}": ANY,
  "/plugin/{tenant_id}/asset": [],
  "/plugin/{tenant_id}/asset/{proxy+}": ANY,
  "/plugin/{tenant_id}/debugging": [],
  "/plugin/{tenant_id}/debugging/{proxy+}": ANY,
  "/plugin/{tenant_id}/extract-asset": ANY,
  "/plugin/{tenant_id}/dispatch": [],
  "/plugin/{tenant_id}/dispatch/{proxy+}": ["POST"],
  "/v2": [],
  "/v2/invoke": [],
  "/v2/invoke/extract": ANY,
  "/v2/invoke/dispatch": [],
  "/v2/invoke/dispatch/{proxy+}": ["POST"],
  "/health": [],
  "/health/check": ["GET"],
  "/e": [],
  "/e/{hook_id}": ANY,
  "/e/{hook_id}/{proxy+}": ANY,
  "/backwards-invocation": [],
  "/backwards-invocation/transaction": ["POST"],
};

export interface RestApiSettings {
  stage: string;
  /** The API's binaryMediaTypes. */
  binaryMediaTypes: readonly string[];
  resources: Readonly<Record<string, Methods>>;
  apiId: string;
  region: string;
  accountId: string;
}

/** As the CDK app deploys the daemon's API. */
export const DAEMON_API: RestApiSettings = {
  stage: "prod",
  binaryMediaTypes: ["*/*"],
  resources: DAEMON_API_RESOURCES,
  apiId: "a1b2c3d4e5",
  region: "us-east-1",
  accountId: "123456789012",
};

export type { RestRequest } from "../../src/aws-local/rest-api-event.js";

/** The event API Gateway builds; throws for a request the gateway would answer itself (no resource, or not its method). */
export function restApiEvent(request: RestRequest, api: RestApiSettings = DAEMON_API): APIGatewayProxyEvent {
  const method = request.method.toUpperCase();
  const path = new URL(request.path, "https://placeholder").pathname;
  const match = matchResource(Object.keys(api.resources), path);
  if (!match)
    throw new Error(`API Gateway: no resource for ${path} (the gateway answers 403 Missing Authentication Token)`);
  if (!api.resources[match.resource]!.includes(method)) {
    throw new Error(
      `API Gateway: ${method} is not a method of ${match.resource} (the gateway answers itself, no Lambda invocation)`,
    );
  }
  return buildEvent(request, { ...api, resourcePaths: Object.keys(api.resources) }, match);
}

// ---------------------------------------------------------------------------------------------
// Answers

/** A Lambda context as the runtime passes it to a handler. */
export function lambdaContext(functionName: string): Context {
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName,
    functionVersion: "$LATEST",
    invokedFunctionArn: `arn:aws:lambda:${DAEMON_API.region}:${DAEMON_API.accountId}:function:${functionName}`,
    memoryLimitInMB: "1024",
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: `${new Date().toISOString().slice(0, 10).replaceAll("-", "/")}/[$LATEST]${randomBytes(16).toString("hex")}`,
    getRemainingTimeInMillis: () => 30_000,
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

/** What the client receives from a buffered proxy result (API Gateway decodes a base64 body). */
export function proxyResultBody(result: APIGatewayProxyResult): Buffer {
  return Buffer.from(result.body, result.isBase64Encoded ? "base64" : "utf8");
}

export interface StreamedAnswer {
  statusCode: number;
  headers: Record<string, string>;
  body: Buffer;
  /** Body writes in arrival order, each with the milliseconds since the stream was created. */
  chunks: Array<{ bytes: Buffer; atMs: number }>;
}

/** The response stream of a streaming invocation; `answer` resolves once the handler ends it. */
export function streamingResponse(): { stream: LocalResponseStream; answer: Promise<StreamedAnswer> } {
  const started = Date.now();
  let prelude: { statusCode?: number; headers?: Record<string, string> } = {};
  const chunks: StreamedAnswer["chunks"] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push({ bytes: Buffer.from(chunk), atMs: Date.now() - started });
      callback();
    },
  }) as LocalResponseStream;
  stream.setPrelude = (p) => {
    prelude = p;
  };
  const answer = new Promise<StreamedAnswer>((resolve, reject) => {
    stream.once("finish", () =>
      resolve({
        statusCode: prelude.statusCode ?? 200,
        headers: prelude.headers ?? {},
        body: Buffer.concat(chunks.map((c) => c.bytes)),
        chunks,
      }),
    );
    stream.once("error", reject);
  });
  return { stream, answer };
}
