/**
 * The local API Gateway (src/aws-local/api-gateway.ts) over real HTTP, in front of the Lambda
 * service emulator whose functions are scripted here (the Lambda service mocked, nothing else):
 * the REST proxy event it builds, buffered and streamed answers (the HTTP prelude of a streamed
 * one), the binary-media-type rules both ways, and its own answers: missing routes, the
 * integration timeout, a silent stream cut, throttling, the stage path.
 */

import type { APIGatewayProxyEvent } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalApiGateway, startApiGateway } from "../../src/aws-local/api-gateway.js";
import { LambdaService, type StreamPart } from "../../src/aws-local/lambda-service.js";
import type { RestApiModel } from "../../src/aws-local/rest-api-model.js";

const encoder = new TextEncoder();
const NOT_FOUND = '{"code":"not_found","message":"route not found"}';
const TIMED_OUT = '{"code":-500,"message":"timed out"}';

function model(throttling = { rateLimit: 1000, burstLimit: 1000 }): RestApiModel {
  const buffered = { functionName: "buffered", streaming: false, timeoutMs: 500 };
  return {
    stage: "prod",
    binaryMediaTypes: ["multipart/form-data", "image/*"],
    resources: new Map([
      ["/", new Map()],
      ["/items", new Map()],
      [
        "/items/{id}",
        new Map([
          ["GET", buffered],
          ["POST", buffered],
        ]),
      ],
      ["/stream", new Map()],
      ["/stream/{proxy+}", new Map([["POST", { functionName: "streamer", streaming: true, timeoutMs: 10_000 }]])],
    ]),
    gatewayResponses: new Map([
      [
        "MISSING_AUTHENTICATION_TOKEN",
        { status: 404, body: NOT_FOUND, headers: { "Content-Type": "application/json" } },
      ],
      ["INTEGRATION_TIMEOUT", { status: 504, body: TIMED_OUT, headers: { "Content-Type": "application/json" } }],
    ]),
    throttling,
  };
}

const events: APIGatewayProxyEvent[] = [];
let lambda: LambdaService;
let gateway: LocalApiGateway;
let throttled: LocalApiGateway;
let streamScript: (event: APIGatewayProxyEvent) => AsyncIterable<StreamPart>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const prelude = (p: unknown) => Buffer.concat([Buffer.from(JSON.stringify(p)), Buffer.alloc(8)]);

beforeAll(async () => {
  lambda = await LambdaService.start({
    handlers: {
      buffered: async (event) => {
        const e = event as APIGatewayProxyEvent;
        events.push(e);
        if (e.pathParameters?.id === "slow") await sleep(1_500);
        if (e.pathParameters?.id === "png")
          return {
            statusCode: 200,
            headers: { "content-type": "image/png" },
            body: Buffer.from([0x89, 0x50, 0x4e, 0x47]).toString("base64"),
            isBase64Encoded: true,
          };
        return {
          statusCode: 201,
          headers: { "x-answer": "yes" },
          multiValueHeaders: { "set-cookie": ["a=1", "b=2"] },
          body: JSON.stringify({ ok: true }),
        };
      },
      // Exists so that it can be invoked; its streamed answers come from `stream`.
      streamer: () => undefined,
    },
    stream: (payload) => streamScript(JSON.parse(new TextDecoder().decode(payload)) as APIGatewayProxyEvent),
    streamContentType: "application/vnd.awslambda.http-integration-response",
  });
  const common = {
    apiId: "abcde12345",
    lambdaEndpoint: lambda.endpoint,
    host: "127.0.0.1",
    port: 0,
    limits: { streamIdleMs: 400 },
  };
  gateway = await startApiGateway({ ...common, model: model() });
  throttled = await startApiGateway({ ...common, model: model({ rateLimit: 0.001, burstLimit: 2 }) });
});

afterAll(async () => {
  await gateway?.close();
  await throttled?.close();
  await lambda?.close();
});

describe("local API Gateway (Lambda service mocked with scripted functions)", () => {
  it("hands a buffered function the REST proxy event: path without the stage, resource, parameters, text JSON and base64 multipart", async () => {
    events.length = 0;
    const json = await fetch(`${gateway.url}/items/42?a=1&a=2`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Api-Key": "k" },
      body: '{"x":1}',
    });
    expect(json.status).toBe(201);
    expect(json.headers.get("x-answer")).toBe("yes");
    expect(json.headers.get("set-cookie")).toBe("a=1, b=2");
    expect(await json.json()).toEqual({ ok: true });
    const form = new FormData();
    form.set("file", new Blob([new Uint8Array([0, 1, 2, 255])]), "f.bin");
    await fetch(`${gateway.url}/items/43`, { method: "POST", body: form });
    const [first, second] = events;
    expect(first).toMatchObject({
      path: "/items/42",
      resource: "/items/{id}",
      pathParameters: { id: "42" },
      multiValueQueryStringParameters: { a: ["1", "2"] },
      body: '{"x":1}',
      isBase64Encoded: false,
      requestContext: { stage: "prod", path: "/prod/items/42", apiId: "abcde12345" },
    });
    expect(first!.headers["X-Api-Key"] ?? first!.headers["x-api-key"]).toBe("k");
    expect(second!.isBase64Encoded).toBe(true);
    expect(Buffer.from(second!.body!, "base64").includes(Buffer.from([0, 1, 2, 255]))).toBe(true);
  });

  it("decodes a base64 answer only for a client whose first Accept type is a binary media type", async () => {
    const asImage = await fetch(`${gateway.url}/items/png`, { headers: { Accept: "image/png" } });
    expect(Buffer.from(await asImage.arrayBuffer())).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47]));
    const asAnything = await fetch(`${gateway.url}/items/png`, { headers: { Accept: "*/*" } });
    expect(await asAnything.text()).toBe(Buffer.from([0x89, 0x50, 0x4e, 0x47]).toString("base64"));
  });

  it("passes a streamed answer through as it arrives, with the status and headers of its HTTP prelude", async () => {
    streamScript = async function* () {
      yield { payload: prelude({ statusCode: 207, headers: { "content-type": "text/event-stream" } }) };
      yield { payload: encoder.encode("data: one\n\n") };
      await sleep(250);
      yield { payload: encoder.encode("data: two\n\n") };
    };
    const started = Date.now();
    const res = await fetch(`${gateway.url}/stream/a/b`, { method: "POST", body: "{}" });
    expect(res.status).toBe(207);
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    const arrivals: Array<{ text: string; at: number }> = [];
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>)
      arrivals.push({ text: Buffer.from(chunk).toString(), at: Date.now() - started });
    expect(arrivals.map((a) => a.text).join("")).toBe("data: one\n\ndata: two\n\n");
    expect(arrivals.length).toBeGreaterThanOrEqual(2);
    expect(arrivals.at(-1)!.at - arrivals[0]!.at).toBeGreaterThanOrEqual(200);
  });

  it("cuts a stream that stays silent past the idle limit", async () => {
    streamScript = async function* () {
      yield { payload: prelude({ statusCode: 200, headers: {} }) };
      yield { payload: encoder.encode("first\n") };
      await sleep(2_000);
      yield { payload: encoder.encode("never\n") };
    };
    const res = await fetch(`${gateway.url}/stream/idle`, { method: "POST", body: "{}" });
    await expect(res.text()).rejects.toThrow();
  });

  it("answers itself: a missing route or method, the integration timeout, a path outside the stage, throttling", async () => {
    for (const [method, path] of [
      ["GET", "/nowhere"],
      ["DELETE", "/items/1"],
      ["GET", "/items"],
    ] as const) {
      const res = await fetch(`${gateway.url}${path}`, { method });
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(await res.text()).toBe(NOT_FOUND);
    }
    const slow = await fetch(`${gateway.url}/items/slow`);
    expect(slow.status).toBe(504);
    expect(await slow.text()).toBe(TIMED_OUT);
    const outside = await fetch(gateway.url.replace(/\/prod$/, "/items/1"));
    expect(outside.status).toBe(403);

    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await fetch(`${throttled.url}/items/1`)).status);
    expect(statuses).toEqual([201, 201, 429]);
  });
});
