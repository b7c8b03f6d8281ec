/**
 * The daemon as it runs on AWS, end to end: the real Lambda handler modules (functions/*.ts)
 * invoked with API Gateway REST proxy events, STORE_BACKEND=aws on a real DynamoDB table, S3
 * bucket and Secrets Manager secret (moto emulator), every Lambda API call made by the real
 * LambdaClient over HTTP.
 *
 * Faked, because the AWS Lambda service cannot run here: the Lambda API itself
 * (src/aws-local/lambda-service.ts, reached through AWS_ENDPOINT_URL_LAMBDA). Behind it:
 * - the install-worker function runs the real functions/install-worker.ts handler with the
 *   asynchronous invoke's event;
 * - the plugin-builder function is a stand-in: the real one (layers/plugin-builder, Python) pip-
 *   installs the plugin's requirements into the code zip; this one copies the package's files
 *   from S3 into a zip at `output_key`, and the SDK comes from a venv instead of the zip/layer;
 * - plugin functions run in local Lambda sandboxes: their code zip unpacked from S3 as the task
 *   root, the REAL layer bootstrap as exec wrapper, the echo-tool fixture on the real SDK.
 *
 * Each handler module is loaded in its own module graph, so the management, dispatch and
 * install-worker "functions" each build their own daemon from the environment and share state
 * only through DynamoDB, S3 and Lambda, as separate Lambda functions do.
 */
import "../../src/local/awslambda-shim.js";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { DeleteTableCommand, type DynamoDBClient } from "@aws-sdk/client-dynamodb";
import {
  DeleteBucketCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { CreateSecretCommand, DeleteSecretCommand, type SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { type DynamoDBDocumentClient, GetCommand, QueryCommand } from "@aws-sdk/lib-dynamodb";
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { BINARY_MEDIA_TYPES } from "../../infra/constructs/api.js";
import { createDynamoDbClient, createDynamoDbDocumentClient, createS3Client } from "../../src/adapters/aws/clients.js";
import { LAMBDA_MAX_REQUEST_BYTES, pluginFunctionName } from "../../src/adapters/aws/lambda-function-spec.js";
import { runtimeRecordKey } from "../../src/adapters/aws/lambda-plugin-runtime.js";
import { createSecretsManagerClient } from "../../src/adapters/aws/secrets.js";
import {
  type LambdaFunction as FakeFunction,
  LambdaService as FakeLambdaService,
} from "../../src/aws-local/lambda-service.js";
import { packageBlobKey } from "../../src/domain/blob-keys.js";
import { type PluginUniqueIdentifier, uniqueIdentifier } from "../../src/domain/identifier.js";
import { DEFAULT_PACKAGE_LIMITS, readPackage } from "../../src/domain/package-archive.js";
import { verifySessionCallbackToken } from "../../src/domain/session-token.js";
import type { LocalResponseStream } from "../../src/local/awslambda-shim.js";
import { keepAlive } from "../../src/routes/stream-keepalive.js";
import { keys } from "../../src/stores/keys.js";
import {
  DAEMON_API,
  lambdaContext,
  proxyResultBody,
  type RestApiSettings,
  type RestRequest,
  restApiEvent,
  type StreamedAnswer,
  streamingResponse,
} from "../support/apigateway-events.js";
import {
  type AwsTestEndpoint,
  awsTestEndpoint,
  createTestBucket,
  createTestTable,
  uniqueResourceName,
} from "../support/aws-resources.js";
import { echoToolPackage, FakeMarketplace, syntheticIdentifier } from "../support/fake-marketplace.js";
import { packFixture } from "../support/fixture-packages.js";
import { buildSdkVenv, type SandboxPool, type SdkVenv, sandboxes } from "../support/lambda-sandboxes.js";
import { buildPackage } from "../support/package-builder.js";

const ECHO_TOOL = fileURLToPath(new URL("../fixtures/plugins/echo-tool/", import.meta.url));
const TENANT = "6f1c2a9e-4b7d-4e21-9a3f-0c5d8e7b1a42";
const M = `/plugin/${TENANT}/management`;
const WORKER = "dify-daemon-install-worker";
const BUILDER = "dify-daemon-plugin-builder";
const PREFIX = "dify-plugin-";
const ROLE_ARN = "arn:aws:iam::123456789012:role/dify-daemon-plugin";
const LAYER_ARN = "arn:aws:lambda:us-east-1:123456789012:layer:dify-plugin-runtime:7";
const PUBLIC_URL = `https://${DAEMON_API.apiId}.execute-api.${DAEMON_API.region}.amazonaws.com/${DAEMON_API.stage}`;
/** The API as infra/constructs/api.ts deploys it: its binary media types decide which bodies arrive base64-encoded. */
const DEPLOYED_API: RestApiSettings = { ...DAEMON_API, binaryMediaTypes: BINARY_MEDIA_TYPES };
const DAEMON_KEY = `key-${crypto.randomUUID()}`;

type BufferedHandler = (event: APIGatewayProxyEvent, context: Context) => Promise<APIGatewayProxyResult>;
type StreamingHandler = (event: APIGatewayProxyEvent, stream: LocalResponseStream, context: Context) => Promise<void>;

interface Envelope {
  code: number;
  message: string;
  data: any;
}

let aws: AwsTestEndpoint;
let dynamo: DynamoDBClient;
let documents: DynamoDBDocumentClient;
let s3: S3Client;
let secrets: SecretsManagerClient;
let table: string;
let bucket: string;
let secretArn: string;
let venv: SdkVenv;
let fake: FakeLambdaService;
let market: FakeMarketplace;
let pool: SandboxPool;
let codeRoot: string;
let management: BufferedHandler;
let dispatch: StreamingHandler;
let installWorker: (event: unknown, context: Context) => Promise<void>;
const workerFailures: unknown[] = [];
const builds: Array<Record<string, string>> = [];

/** The plugin-builder stand-in: the package's files, from S3, into a code zip at output_key in S3. */
async function buildCode(event: unknown) {
  const e = event as { bucket: string; package_key: string; output_key: string; arch: string; python_version: string };
  builds.push(e);
  const stored = await s3.send(new GetObjectCommand({ Bucket: e.bucket, Key: e.package_key }));
  const archive = await readPackage(await stored.Body!.transformToByteArray(), DEFAULT_PACKAGE_LIMITS);
  const zip = await buildPackage(Object.fromEntries(archive.entries.map((entry) => [entry.name, entry.data])));
  await s3.send(new PutObjectCommand({ Bucket: e.bucket, Key: e.output_key, Body: zip }));
  const unzipped = archive.entries.reduce((sum, entry) => sum + entry.data.byteLength, 0);
  return {
    code_key: e.output_key,
    size_bytes: zip.byteLength,
    unzipped_bytes: unzipped,
    log_tail: "copied the package's files (test stand-in)",
  };
}

/** What Lambda does before an environment starts: the function's code zip, from S3, unpacked as its task root. */
async function unpackCode(fn: FakeFunction): Promise<string> {
  const stored = await s3.send(new GetObjectCommand({ Bucket: fn.code.S3Bucket, Key: fn.code.S3Key }));
  const archive = await readPackage(await stored.Body!.transformToByteArray(), DEFAULT_PACKAGE_LIMITS);
  const root = join(codeRoot, fn.name);
  for (const entry of archive.entries) {
    const path = join(root, entry.name);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, entry.data);
  }
  return root;
}

/** Variables the CDK app gives only some functions (infra/stack.ts). */
const PER_FUNCTION_ENV = ["PLUGIN_BUILDER_FUNCTION", "INSTALL_WORKER_FUNCTION"] as const;

/**
 * A handler module in a module graph of its own, so it builds its own daemon as a separate
 * function does, from its own environment: the daemon reads its configuration once, at cold
 * start, which happens here.
 */
async function lambdaFunction<H>(
  load: () => Promise<[{ handler: H }, typeof import("../../src/daemon.js")]>,
  env: Partial<Record<(typeof PER_FUNCTION_ENV)[number], string>>,
) {
  vi.resetModules();
  for (const name of PER_FUNCTION_ENV) delete process.env[name];
  Object.assign(process.env, env);
  const [{ handler }, { sharedDaemon }] = await load();
  return { handler, daemon: await sharedDaemon() };
}

beforeAll(async () => {
  aws = await awsTestEndpoint();
  dynamo = createDynamoDbClient(aws.clientConfig);
  documents = createDynamoDbDocumentClient(dynamo);
  s3 = createS3Client({ ...aws.clientConfig, forcePathStyle: true });
  secrets = createSecretsManagerClient(aws.clientConfig);
  table = uniqueResourceName("deployment");
  bucket = uniqueResourceName("deployment-packages");
  await Promise.all([createTestTable(dynamo, table), createTestBucket(s3, bucket)]);
  secretArn = (
    await secrets.send(
      new CreateSecretCommand({ Name: `dify-daemon-key-${crypto.randomUUID()}`, SecretString: DAEMON_KEY }),
    )
  ).ARN!;

  market = await FakeMarketplace.start();
  venv = buildSdkVenv({
    uv: inject("uvPath"),
    python: inject("pythonPath"),
    requirements: join(ECHO_TOOL, "requirements.txt"),
  });
  codeRoot = mkdtempSync(join(tmpdir(), "lambda-task-roots-"));
  fake = await FakeLambdaService.start({
    handlers: {
      [BUILDER]: buildCode,
      [WORKER]: (event) =>
        installWorker(event, lambdaContext(WORKER)).catch((err: unknown) => void workerFailures.push(err)),
    },
    // Every created function is Pending on the first GetFunction: the daemon must wait for Active.
    pendingPolls: 1,
  });
  // The managed python3.12 runtime's interpreter runs the bootstrap and the plugin; this venv
  // stands in for it plus the layer's SDK packages.
  pool = sandboxes({ taskRoot: unpackCode, runtimePython: venv.python });
  fake.stream = pool.handler;

  // The environment the CDK app gives every handler (infra/stack.ts), pointed at moto and the fake.
  Object.assign(process.env, {
    AWS_ENDPOINT_URL: aws.clientConfig.endpoint,
    AWS_ENDPOINT_URL_LAMBDA: fake.endpoint,
    AWS_ACCESS_KEY_ID: aws.clientConfig.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: aws.clientConfig.credentials.secretAccessKey,
    AWS_REGION: aws.clientConfig.region,
    STORE_BACKEND: "aws",
    METADATA_TABLE: table,
    PACKAGE_BUCKET: bucket,
    DAEMON_KEY_SECRET_ARN: secretArn,
    PLUGIN_ROLE_ARN: ROLE_ARN,
    PLUGIN_LAYER_ARN: LAYER_ARN,
    PLUGIN_FUNCTION_PREFIX: PREFIX,
    DAEMON_PUBLIC_URL: PUBLIC_URL,
    FORCE_VERIFYING_SIGNATURE: "false",
    PLUGIN_MAX_EXECUTION_TIMEOUT: "120",
    // Keep-alive after a quarter second of silence (60 s deployed), the first chunk waited for up to 30 s.
    STREAM_KEEPALIVE_MS: "250",
    STREAM_FIRST_CHUNK_WAIT_MS: "30000",
    MARKETPLACE_API_URL: market.url,
    FETCH_MISSING_MARKETPLACE_PACKAGES: "true",
    LOG_LEVEL: "warn",
  });
  delete process.env.SERVER_KEY;

  // Each handler in its own module graph and with its own environment, as each function on AWS.
  const m = await lambdaFunction(
    () => Promise.all([import("../../functions/management.js"), import("../../src/daemon.js")]),
    {
      PLUGIN_BUILDER_FUNCTION: BUILDER,
      INSTALL_WORKER_FUNCTION: WORKER,
    },
  );
  const d = await lambdaFunction(
    () => Promise.all([import("../../functions/dispatch.js"), import("../../src/daemon.js")]),
    {},
  );
  const w = await lambdaFunction(
    () => Promise.all([import("../../functions/install-worker.js"), import("../../src/daemon.js")]),
    {
      PLUGIN_BUILDER_FUNCTION: BUILDER,
    },
  );
  if (new Set([m.daemon, d.daemon, w.daemon]).size !== 3)
    throw new Error("the handler modules share a daemon: they would not be separate functions");
  management = m.handler as unknown as BufferedHandler;
  dispatch = d.handler as unknown as StreamingHandler;
  installWorker = w.handler as unknown as typeof installWorker;
}, 600_000);

afterAll(async () => {
  if (process.env.DEBUG_LAMBDA_SANDBOX && pool) console.log(pool.output());
  await fake?.idle();
  await pool?.stop();
  await fake?.close();
  await market?.close();
  venv?.remove();
  if (codeRoot) rmSync(codeRoot, { recursive: true, force: true });
  if (s3 && bucket) {
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
    const objects = (listed.Contents ?? []).map((o) => ({ Key: o.Key! }));
    if (objects.length > 0) await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: objects } }));
    await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
  }
  if (dynamo && table) await dynamo.send(new DeleteTableCommand({ TableName: table }));
  if (secrets && secretArn)
    await secrets.send(new DeleteSecretCommand({ SecretId: secretArn, ForceDeleteWithoutRecovery: true }));
  s3?.destroy();
  dynamo?.destroy();
  secrets?.destroy();
  await aws?.release();
});

// ---------------------------------------------------------------------------------------------
// Calls as Dify makes them, through API Gateway

const withKey = (headers: RestRequest["headers"] = {}, key = DAEMON_KEY) => ({ "X-Api-Key": key, ...headers });

/** What Lambda checks before it runs a handler: the whole event within its 6 MB synchronous request limit. */
function lambdaEvent(request: RestRequest, api = DEPLOYED_API): APIGatewayProxyEvent {
  const event = restApiEvent(request, api);
  const bytes = Buffer.byteLength(JSON.stringify(event));
  if (bytes > LAMBDA_MAX_REQUEST_BYTES)
    throw new Error(`Lambda refuses the event: ${bytes} bytes > ${LAMBDA_MAX_REQUEST_BYTES} (API Gateway answers 502)`);
  return event;
}

async function callManagement(
  request: RestRequest,
  api = DEPLOYED_API,
): Promise<{ status: number; envelope: Envelope; event: APIGatewayProxyEvent }> {
  const event = lambdaEvent(request, api);
  const result = await management(event, lambdaContext("dify-daemon-management"));
  return {
    status: result.statusCode,
    envelope: JSON.parse(proxyResultBody(result).toString("utf8")) as Envelope,
    event,
  };
}

const getJson = (path: string, query?: RestRequest["query"]) =>
  callManagement({ method: "GET", path: `${M}${path}`, headers: withKey(), query });
const postJson = (path: string, body: unknown) =>
  callManagement({
    method: "POST",
    path: `${M}${path}`,
    headers: withKey({ "Content-Type": "application/json" }),
    body: JSON.stringify(body),
  });

async function callDispatch(request: RestRequest): Promise<StreamedAnswer> {
  const { stream, answer } = streamingResponse();
  await dispatch(lambdaEvent(request), stream, lambdaContext("dify-daemon-dispatch"));
  return answer;
}

const events = (answer: StreamedAnswer): Envelope[] =>
  answer.body
    .toString("utf8")
    .split("\n")
    .filter((line) => line.startsWith("data: "))
    .map((line) => JSON.parse(line.slice(6)) as Envelope);

/** Dify's multipart upload (httpx), as bytes plus its Content-Type with the boundary. */
async function multipart(pkg: Uint8Array): Promise<{ body: Uint8Array; contentType: string }> {
  const form = new FormData();
  form.set("dify_pkg", new Blob([pkg]), "echo-tool.difypkg");
  form.set("verify_signature", "false");
  const request = new Request("https://daemon.invalid/", { method: "POST", body: form });
  return { body: new Uint8Array(await request.arrayBuffer()), contentType: request.headers.get("content-type")! };
}

const pluginFunctions = () => [...fake.functions.values()].filter((fn) => fn.name.startsWith(PREFIX));

async function installationItems() {
  const out = await documents.send(
    new QueryCommand({
      TableName: table,
      KeyConditionExpression: "pk = :pk AND begins_with(sk, :sk)",
      ExpressionAttributeValues: { ":pk": keys.tenant(TENANT), ":sk": keys.installationPrefix },
      ConsistentRead: true,
    }),
  );
  return out.Items ?? [];
}

// ---------------------------------------------------------------------------------------------

describe("stream keep-alive before the first chunk (src/adapters/aws/stream-keepalive.ts)", () => {
  async function timed(source: AsyncIterable<string>, timing: { idleMs: number; firstChunkWaitMs: number }) {
    const started = Date.now();
    const out: Array<{ value: string; atMs: number }> = [];
    for await (const value of keepAlive(source, timing)) out.push({ value: String(value), atMs: Date.now() - started });
    return out;
  }
  const late = (ms: number) =>
    (async function* () {
      await new Promise((r) => setTimeout(r, ms));
      yield "data: {}\n\n";
    })();

  it("holds the answer back while the plugin has said nothing, as Dify's first-token timeout needs", async () => {
    const out = await timed(late(150), { idleMs: 50, firstChunkWaitMs: 400 });
    expect(out.map((o) => o.value)).toEqual(["data: {}\n\n"]);
  });

  it("starts it with a blank line before API Gateway's idle cut when the plugin stays silent, then keeps it alive", async () => {
    const out = await timed(late(700), { idleMs: 100, firstChunkWaitMs: 300 });
    expect(out[0]).toMatchObject({ value: "\n" });
    expect(out[0]!.atMs).toBeGreaterThanOrEqual(290);
    expect(out.at(-1)!.value).toBe("data: {}\n\n");
    expect(out.filter((o) => o.value === "\n").length).toBeGreaterThanOrEqual(3);
  });
});

describe("the AWS composition: API Gateway → Lambda handlers → DynamoDB, S3, Secrets Manager (moto) and the Lambda API (faked)", () => {
  let uid: PluginUniqueIdentifier;
  let installationId: string;

  it("answers a wrong daemon key with the 401 envelope, on buffered and streaming handlers alike", async () => {
    const wrong = await callManagement({
      method: "GET",
      path: `${M}/list`,
      headers: withKey({}, "not-the-key"),
      query: { page: "1", page_size: "10" },
    });
    expect(wrong.status).toBe(401);
    expect(wrong.envelope).toMatchObject({ code: -401, data: null });
    expect(JSON.parse(wrong.envelope.message)).toMatchObject({
      error_type: "PluginDaemonUnauthorizedError",
      message: "unauthorized",
    });

    const missing = await callManagement({ method: "GET", path: `${M}/list`, query: { page: "1", page_size: "10" } });
    expect(missing.status).toBe(401);

    const streamed = await callDispatch({
      method: "POST",
      path: `/plugin/${TENANT}/dispatch/tool/invoke`,
      headers: withKey({ "Content-Type": "application/json", "X-Plugin-ID": "fixtures/echo-tool" }, "not-the-key"),
      body: JSON.stringify({ user_id: "u1", data: {} }),
    });
    expect(streamed.statusCode).toBe(401);
    expect(JSON.parse(streamed.body.toString("utf8"))).toMatchObject({ code: -401, data: null });
  });

  it("accepts the echo-tool package uploaded as multipart, which API Gateway delivers base64-encoded", async () => {
    const pkg = await packFixture("echo-tool");
    const { body, contentType } = await multipart(pkg);
    const upload = await callManagement({
      method: "POST",
      path: `${M}/install/upload/package`,
      headers: withKey({ "Content-Type": contentType, "User-Agent": "python-httpx/0.27.2" }),
      body,
    });
    expect(upload.event.isBase64Encoded).toBe(true);
    expect(upload.status).toBe(200);
    expect(upload.envelope.code).toBe(0);
    uid = uniqueIdentifier(upload.envelope.data.unique_identifier);
    expect(uid).toMatch(/^fixtures\/echo-tool:0\.0\.1@[0-9a-f]{64}$/);
    expect(upload.envelope.data.manifest).toMatchObject({
      name: "echo-tool",
      author: "fixtures",
      resource: { memory: 134_217_728 },
    });

    // Stored where every function finds it: the package in S3, its record in DynamoDB.
    const object = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: packageBlobKey(uid) }));
    expect(object.ContentLength).toBe(pkg.byteLength);
    const record = await documents.send(
      new GetCommand({ TableName: table, Key: keys.package(uid), ConsistentRead: true }),
    );
    expect(record.Item).toBeDefined();
  });

  it("decodes a stored package for Dify's GET with a JSON body, base64-encoded or as text", async () => {
    const request: RestRequest = {
      method: "GET",
      path: `${M}/decode/from_identifier`,
      headers: withKey({ "Content-Type": "application/json" }),
      body: JSON.stringify({ plugin_unique_identifier: uid }),
    };
    // The deployed API passes JSON as text; an API with binary media type */* would base64-encode it.
    for (const api of [DEPLOYED_API, { ...DAEMON_API, binaryMediaTypes: ["*/*"] }]) {
      const decoded = await callManagement(request, api);
      expect(decoded.event.isBase64Encoded).toBe(api !== DEPLOYED_API);
      expect(decoded.event.body).not.toBeNull();
      expect(decoded.status).toBe(200);
      expect(decoded.envelope).toMatchObject({
        code: 0,
        data: { unique_identifier: uid, manifest: { name: "echo-tool", verified: false } },
      });
    }
  });

  it("installs through the install-worker function, which creates one plugin function configured from the manifest", async () => {
    const started = await postJson("/install/identifiers", {
      plugin_unique_identifiers: [uid],
      source: "package",
      metas: [{}],
    });
    expect(started.envelope).toMatchObject({ code: 0, data: { all_installed: false } });
    const taskId = started.envelope.data.task_id as string;
    expect(taskId).toBeTruthy();

    // The management function handed the task to the worker through Lambda's asynchronous invoke.
    expect(fake.callsOf("Invoke").filter((c) => c.functionName === WORKER)).toEqual([
      { operation: "Invoke", functionName: WORKER, invocationType: "Event", body: { tenantId: TENANT, taskId } },
    ]);
    await fake.idle();
    expect(workerFailures).toEqual([]);

    const task = await getJson(`/install/tasks/${taskId}`);
    expect(task.envelope.data, JSON.stringify(task.envelope)).toMatchObject({
      id: taskId,
      status: "success",
      total_plugins: 1,
      completed_plugins: 1,
      plugins: [{ plugin_unique_identifier: uid, status: "success" }],
    });

    // The builder got the package from the bucket and wrote the code zip there.
    expect(builds).toHaveLength(1);
    expect(builds[0]).toMatchObject({
      bucket,
      package_key: packageBlobKey(uid),
      arch: "arm64",
      python_version: "3.12",
    });
    const codeKey = builds[0]!.output_key!;
    await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: codeKey }));

    const functions = pluginFunctions();
    expect(functions.map((fn) => fn.name)).toEqual([pluginFunctionName(PREFIX, uid)]);
    const fn = functions[0]!;
    expect(fn.configuration).toMatchObject({
      Runtime: "python3.12",
      // resource.memory 134217728 bytes = 128 MiB, raised to the 1024 MB floor (CPU for a cold start).
      MemorySize: 1024,
      Timeout: 120,
      Architectures: ["arm64"],
      Role: ROLE_ARN,
      Layers: [{ Arn: LAYER_ARN }],
      State: "Active",
    });
    expect(fn.configuration.Environment?.Variables).toEqual({
      AWS_LAMBDA_EXEC_WRAPPER: "/opt/dify-plugin-bootstrap",
      INSTALL_METHOD: "local",
      DIFY_PLUGIN_ENTRYPOINT: "main",
    });
    expect(fn.code).toEqual({ S3Bucket: bucket, S3Key: codeKey });
    // It was still Pending when first described: the worker waited for Active.
    expect(fake.callsOf("GetFunction").filter((c) => c.functionName === fn.name).length).toBeGreaterThanOrEqual(2);
  });

  it("lists the installation in management/list and /tools, from items in DynamoDB", async () => {
    const list = await getJson("/list", { page: "1", page_size: "256" });
    expect(list.envelope.code).toBe(0);
    expect(list.envelope.data.total).toBe(1);
    const entry = list.envelope.data.list[0];
    expect(entry).toMatchObject({
      plugin_id: "fixtures/echo-tool",
      plugin_unique_identifier: uid,
      runtime_type: "serverless",
      tenant_id: TENANT,
      source: "package",
    });
    installationId = entry.installation_id;

    const tools = await getJson("/tools", { page: "1", page_size: "256" });
    expect(tools.envelope.data).toEqual([
      expect.objectContaining({ provider: "echo", plugin_id: "fixtures/echo-tool", plugin_unique_identifier: uid }),
    ]);

    const items = await installationItems();
    expect(items).toHaveLength(1);
    expect(items[0]).toMatchObject({
      pk: `TENANT#${TENANT}`,
      sk: "INSTALLATION#fixtures/echo-tool",
      gsi1pk: `INSTALLATION#${installationId}`,
      gsi1sk: "INSTALLATION",
      data: { id: installationId, plugin_unique_identifier: uid, runtime_type: "serverless" },
    });
    const runtime = await documents.send(
      new GetCommand({ TableName: table, Key: runtimeRecordKey(uid), ConsistentRead: true }),
    );
    expect(runtime.Item?.data).toMatchObject({ function_name: pluginFunctionName(PREFIX, uid), memory_mib: 1024 });
  });

  it("streams a tool invocation from the plugin function as data: envelopes", async () => {
    const answer = await callDispatch({
      method: "POST",
      path: `/plugin/${TENANT}/dispatch/tool/invoke`,
      headers: withKey({ "Content-Type": "application/json", "X-Plugin-ID": "fixtures/echo-tool" }),
      body: JSON.stringify({
        user_id: "u1",
        data: {
          provider: "echo",
          tool: "echo",
          credentials: {},
          credential_type: "api-key",
          tool_parameters: { text: "hello through API Gateway" },
        },
      }),
    });
    expect(answer.statusCode).toBe(200);
    expect(answer.headers["content-type"]).toBe("text/event-stream");
    expect(answer.body.toString("utf8")).toMatch(/^data: \{/);
    // Written to the response stream piece by piece as the plugin produced them, not buffered into one.
    expect(answer.chunks.length).toBeGreaterThan(1);
    const envelopes = events(answer);
    expect(
      envelopes.every((e) => e.code === 0),
      answer.body.toString("utf8"),
    ).toBe(true);
    const messages = envelopes.map((e) => e.data);
    expect(messages).toContainEqual(
      expect.objectContaining({ type: "text", message: { text: "hello through API Gateway" } }),
    );
    expect(messages).toContainEqual(
      expect.objectContaining({
        type: "json",
        message: expect.objectContaining({ json_object: { echo: "hello through API Gateway" } }),
      }),
    );

    // One streamed invocation of the plugin's function, carrying a callback signed with the key from Secrets Manager.
    const sessions = fake.callsOf("InvokeWithResponseStream");
    expect(sessions.map((c) => c.functionName)).toEqual([pluginFunctionName(PREFIX, uid)]);
    const payload = sessions[0]!.body as { request: { session_id: string }; callback: { url: string; token: string } };
    expect(payload.callback.url).toBe(PUBLIC_URL);
    expect(verifySessionCallbackToken(payload.callback.token, payload.request.session_id, TENANT, DAEMON_KEY)).toBe(
      true,
    );

    // The warm environment serves the v2 route (plugin by unique identifier) too.
    const v2 = await callDispatch({
      method: "POST",
      path: "/v2/invoke/dispatch/tool/invoke",
      headers: withKey({ "Content-Type": "application/json", "X-Plugin-Unique-Identifier": uid }),
      body: JSON.stringify({
        tenant_id: TENANT,
        user_id: "u1",
        data: { provider: "echo", tool: "stream_chunks", credentials: {}, tool_parameters: { count: 3 } },
      }),
    });
    expect(events(v2).map((e) => e.data.message.text)).toEqual(["chunk-0", "chunk-1", "chunk-2"]);
    expect(pool.running.size).toBe(1);
  });

  it("keeps a silent stream alive with blank lines, which Dify's line reader skips", async () => {
    // API Gateway cuts a stream silent for 5 minutes; here the plugin pauses 1.2 s between chunks.
    const answer = await callDispatch({
      method: "POST",
      path: `/plugin/${TENANT}/dispatch/tool/invoke`,
      headers: withKey({ "Content-Type": "application/json", "X-Plugin-ID": "fixtures/echo-tool" }),
      body: JSON.stringify({
        user_id: "u1",
        data: {
          provider: "echo",
          tool: "stream_chunks",
          credentials: {},
          tool_parameters: { count: 3, delay_ms: 1200 },
        },
      }),
    });
    expect(events(answer).map((e) => e.data.message.text)).toEqual(["chunk-0", "chunk-1", "chunk-2"]);
    const keepAlives = answer.chunks.filter((c) => c.bytes.toString() === "\n");
    expect(keepAlives.length).toBeGreaterThanOrEqual(4);
    // The answer starts with the plugin's first chunk (Dify's first-token timeout), not a keep-alive.
    expect(answer.chunks[0]!.bytes.toString()).toMatch(/^data: /);
    const gaps = answer.chunks.slice(1).map((c, i) => c.atMs - answer.chunks[i]!.atMs);
    expect(Math.max(...gaps)).toBeLessThan(900);
  });

  it("carries a 5 MB JSON dispatch body as text inside Lambda's 6 MB event, to the plugin and back", async () => {
    // Base64 (binary media type */*) would have made this a 6.7 MB event, which Lambda refuses.
    const padding = "x".repeat(5 * 1024 * 1024);
    const request: RestRequest = {
      method: "POST",
      path: `/plugin/${TENANT}/dispatch/tool/invoke`,
      headers: withKey({ "Content-Type": "application/json", "X-Plugin-ID": "fixtures/echo-tool" }),
      body: JSON.stringify({
        user_id: "u1",
        data: { provider: "echo", tool: "stream_chunks", credentials: {}, tool_parameters: { count: 2, padding } },
      }),
    };
    expect(lambdaEvent(request).isBase64Encoded).toBe(false);
    expect(() => lambdaEvent(request, { ...DAEMON_API, binaryMediaTypes: ["*/*"] })).toThrow(
      /Lambda refuses the event/,
    );
    const answer = await callDispatch(request);
    expect(events(answer).map((e) => e.data.message.text)).toEqual(["chunk-0", "chunk-1"]);
    // The plugin function got the whole parameter: its invocation payload stayed under 6 MB too.
    const payload = fake.callsOf("InvokeWithResponseStream").at(-1)!.body as {
      request: { data: { tool_parameters: { padding: string } } };
    };
    expect(payload.request.data.tool_parameters.padding).toHaveLength(padding.length);
  });

  it("downloads a marketplace identifier it does not have when Dify asks fetch/manifest, so Dify never uploads it", async () => {
    // Dify's install_from_marketplace_pkg: fetch/manifest first, download + upload only when that fails.
    const pkg = await echoToolPackage("0.0.2", "market-tool");
    const marketUid = await market.publish(pkg);
    const fetched = await getJson("/fetch/manifest", { plugin_unique_identifier: marketUid });
    expect(fetched.envelope, JSON.stringify(fetched.envelope)).toMatchObject({
      code: 0,
      data: { name: "market-tool", version: "0.0.2" },
    });
    const object = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: packageBlobKey(marketUid) }));
    expect(object.ContentLength).toBe(pkg.byteLength);
    // What Dify calls next works on the stored package.
    const decoded = await callManagement({
      method: "GET",
      path: `${M}/decode/from_identifier`,
      headers: withKey({ "Content-Type": "application/json" }),
      body: JSON.stringify({ plugin_unique_identifier: marketUid }),
    });
    expect(decoded.envelope).toMatchObject({ code: 0, data: { unique_identifier: marketUid } });

    // Neither stored nor on the marketplace: the same "not found" as before, so Dify's fallback still runs.
    const unknown = await getJson("/fetch/manifest", {
      plugin_unique_identifier: syntheticIdentifier("fixtures/nowhere", "1.0.0"),
    });
    expect(unknown.envelope.code).not.toBe(0);
    expect(unknown.envelope.message).toMatch(/plugin not found/);
  });

  it("uninstalls: the plugin function is deleted and the installation item is gone", async () => {
    const removed = await postJson("/uninstall", { plugin_installation_id: installationId });
    expect(removed.envelope).toEqual({ code: 0, message: "success", data: true });

    expect(fake.callsOf("DeleteFunction").map((c) => c.functionName)).toEqual([pluginFunctionName(PREFIX, uid)]);
    expect(pluginFunctions()).toEqual([]);
    expect(await installationItems()).toEqual([]);
    const runtime = await documents.send(
      new GetCommand({ TableName: table, Key: runtimeRecordKey(uid), ConsistentRead: true }),
    );
    expect(runtime.Item).toBeUndefined();

    const list = await getJson("/list", { page: "1", page_size: "256" });
    expect(list.envelope.data).toEqual({ list: [], total: 0 });
    const after = await callDispatch({
      method: "POST",
      path: `/plugin/${TENANT}/dispatch/tool/invoke`,
      headers: withKey({ "Content-Type": "application/json", "X-Plugin-ID": "fixtures/echo-tool" }),
      body: JSON.stringify({
        user_id: "u1",
        data: { provider: "echo", tool: "echo", credentials: {}, tool_parameters: { text: "x" } },
      }),
    });
    expect(after.statusCode).toBe(404);
    expect(JSON.parse(after.body.toString("utf8"))).toMatchObject({ code: -404 });
  });
});
