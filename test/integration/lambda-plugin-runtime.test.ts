/**
 * LambdaPluginRuntime against the real LambdaClient. The AWS Lambda service cannot run here, so
 * it is faked over HTTP on loopback (src/aws-local/lambda-service.ts), with the real event
 * stream framing. Where a plugin function's output matters, the fake runs the real plugin layer
 * bootstrap in a local execution environment (src/aws-local/runtime-api.ts, execution-environment.ts).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import type { LambdaClient } from "@aws-sdk/client-lambda";
import { CreateSecretCommand } from "@aws-sdk/client-secrets-manager";
import { App, Stack } from "aws-cdk-lib";
import type { Asset } from "aws-cdk-lib/aws-s3-assets";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { PackageBucket } from "../../infra/constructs/package-bucket.js";
import { PluginRuntime } from "../../infra/constructs/plugin-runtime.js";
import { createLambdaClient } from "../../src/adapters/aws/clients.js";
import { pluginFunctionName } from "../../src/adapters/aws/lambda-function-spec.js";
import { LambdaInstallQueue } from "../../src/adapters/aws/lambda-install-queue.js";
import { LambdaPluginRuntime, runtimeRecordKey } from "../../src/adapters/aws/lambda-plugin-runtime.js";
import { createSecretsManagerClient, SecretCache } from "../../src/adapters/aws/secrets.js";
import { SqliteItemStore } from "../../src/adapters/local/sqlite-item-store.js";
import {
  LambdaService,
  type RequestHandler,
  type StreamHandler,
  type StreamPart,
  streamFromRuntime,
} from "../../src/aws-local/lambda-service.js";
import { type DaemonConfig, loadConfig } from "../../src/config.js";
import { daemonKeySource } from "../../src/daemon-key.js";
import { packageBlobKey } from "../../src/domain/blob-keys.js";
import { loadDeclaration } from "../../src/domain/declaration.js";
import { formatUniqueIdentifier } from "../../src/domain/identifier.js";
import type { PluginDeclaration } from "../../src/domain/manifest.js";
import { DEFAULT_PACKAGE_LIMITS, readPackage } from "../../src/domain/package-archive.js";
import { verifySessionCallbackToken } from "../../src/domain/session-token.js";
import type { BlobStore } from "../../src/ports/blob-store.js";
import { installJobPayloadSchema } from "../../src/ports/install-queue.js";
import type { Marketplace } from "../../src/ports/marketplace.js";
import type { InstallablePlugin, PluginRequest, SessionOutput } from "../../src/ports/plugin-runtime.js";
import { Installer } from "../../src/services/installer.js";
import { PackageIntake } from "../../src/services/package-intake.js";
import { InstallTasks } from "../../src/stores/install-tasks.js";
import { Installations } from "../../src/stores/installations.js";
import { PackageRecords } from "../../src/stores/package-records.js";
import { RuntimeClaims } from "../../src/stores/runtime-claims.js";
import { type AwsTestEndpoint, awsTestEndpoint } from "../support/aws-resources.js";
import { buildSdkVenv, type SandboxPool, type SdkVenv, sandboxes } from "../support/lambda-sandboxes.js";
import { buildPackage } from "../support/package-builder.js";

const ECHO_TOOL = fileURLToPath(new URL("../fixtures/plugins/echo-tool/", import.meta.url));
const BUILDER = "dify-plugin-builder";
const BUCKET = "plugin-packages";
const SECRET = "daemon-key-for-tests";
const TENANT = "tenant-1";
const MIB = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Fixtures

function filesOf(dir: string): Record<string, Uint8Array> {
  const out: Record<string, Uint8Array> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      if (name === ".venv" || name === "__pycache__") continue;
      if (statSync(path).isDirectory()) walk(path);
      else out[relative(dir, path)] = readFileSync(path);
    }
  };
  walk(dir);
  return out;
}

interface Plugin extends InstallablePlugin {
  declaration: PluginDeclaration;
}

/** The echo-tool fixture as a real package, with `resource` fields overridden per test. */
async function echoTool(resource: Record<string, unknown> = {}, runner: Record<string, unknown> = {}): Promise<Plugin> {
  const archive = await readPackage(await buildPackage(filesOf(ECHO_TOOL)), DEFAULT_PACKAGE_LIMITS);
  const base = loadDeclaration(
    (p) => archive.file(p),
    archive.entries.map((e) => e.name),
  );
  const declaration = {
    ...base,
    resource: { ...base.resource, ...resource },
    meta: { ...base.meta, runner: { ...base.meta.runner, ...runner } },
  } as PluginDeclaration;
  // Distinct identifiers per variant, as distinct packages would have.
  const checksum = Buffer.from(JSON.stringify([resource, runner]))
    .toString("hex")
    .padEnd(64, "0")
    .slice(0, 64);
  const uniqueIdentifier = formatUniqueIdentifier({
    author: "fixtures",
    name: "echo-tool",
    version: "0.0.1",
    checksum,
  });
  // The Lambda runtime builds from the package in the bucket: reading it here would be waste.
  const unread = () => Promise.reject(new Error("the Lambda runtime read the package archive"));
  return { uniqueIdentifier, declaration, archive: unread };
}

function testConfig(overrides: Record<string, string> = {}): DaemonConfig {
  return loadConfig({
    STORE_BACKEND: "aws",
    SERVER_KEY: SECRET,
    PLUGIN_BUILDER_FUNCTION: BUILDER,
    PLUGIN_ROLE_ARN: "arn:aws:iam::123456789012:role/dify-plugin",
    PLUGIN_LAYER_ARN: "arn:aws:lambda:us-east-1:123456789012:layer:dify-plugin:3",
    PLUGIN_ARCH: "arm64",
    DAEMON_PUBLIC_URL: "https://daemon.example.com",
    PLUGIN_MAX_EXECUTION_TIMEOUT: "600",
    PLUGIN_LAYER_BYTES: "60000",
    ...overrides,
  });
}

function request(data: Record<string, unknown>, sessionId: string = crypto.randomUUID()): PluginRequest {
  return {
    session_id: sessionId,
    event: "request",
    data: { user_id: "u1", type: "tool", action: "invoke_tool", ...data },
  };
}

async function collect(outputs: AsyncIterable<SessionOutput>): Promise<SessionOutput[]> {
  const all: SessionOutput[] = [];
  for await (const o of outputs) all.push(o);
  return all;
}

const noBackwards = async function* () {};
const invokeOptions = (signal = new AbortController().signal) => ({ signal, backwards: noBackwards, tenantId: TENANT });

const encoder = new TextEncoder();
const sessionLine = (sessionId: string, type: string, data: unknown) =>
  `${JSON.stringify({ event: "session", session_id: sessionId, data: { type, data } })}\n\n`;

/** Cuts bytes into pieces of 1..7 bytes, so lines and UTF-8 characters straddle PayloadChunks. */
function* splitEverywhere(bytes: Uint8Array): Generator<StreamPart> {
  let at = 0;
  for (let i = 0; at < bytes.length; i++) {
    const size = (i % 7) + 1;
    yield { payload: bytes.slice(at, at + size) };
    at += size;
  }
}

// ---------------------------------------------------------------------------------------------
// Shared fake service, client and runtime

let fake: LambdaService;
let lambda: LambdaClient;
let items: SqliteItemStore;
let builder: RequestHandler;
const defaultBuilder: RequestHandler = (event) => {
  const e = event as { output_key: string };
  return { code_key: e.output_key, size_bytes: 4242, log_tail: "Successfully installed dify_plugin" };
};

beforeAll(async () => {
  fake = await LambdaService.start({ handlers: { [BUILDER]: (event, fn) => builder(event, fn) }, pendingPolls: 2 });
  // As production builds its session client: retries are the runtime's own.
  lambda = createLambdaClient({
    endpoint: fake.endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
    maxAttempts: 1,
  });
});

afterAll(async () => {
  lambda?.destroy();
  await fake?.close();
});

beforeEach(() => {
  builder = defaultBuilder;
  items = new SqliteItemStore({ filename: ":memory:" });
  fake.calls.length = 0;
  fake.stream = undefined;
  for (const name of [...fake.functions.keys()]) if (name !== BUILDER) fake.functions.delete(name);
});

function runtime(config = testConfig()): LambdaPluginRuntime {
  return new LambdaPluginRuntime({
    config,
    bucket: BUCKET,
    items,
    lambda,
    callbackSecret: daemonKeySource(config),
    wait: { minDelaySeconds: 0.01, maxDelaySeconds: 0.05, maxWaitSeconds: 5 },
    retryDelayMs: () => 5,
  });
}

// ---------------------------------------------------------------------------------------------

describe("LambdaPluginRuntime install/remove (Lambda service faked over HTTP)", () => {
  it("builds the code, then creates the function from the manifest and records it once active", async () => {
    const plugin = await echoTool({ memory: 2048 * MIB });
    const rt = runtime();
    const progress: string[] = [];
    expect(await rt.isInstalled(plugin.uniqueIdentifier)).toBe(false);

    await rt.install(plugin, (line) => progress.push(line));

    const checksum = plugin.uniqueIdentifier.split("@")[1];
    const codeKey = `plugin-code/fixtures/echo-tool/0.0.1@${checksum}/python3.12-arm64.zip`;
    expect(fake.callsOf("Invoke")[0]).toMatchObject({
      functionName: BUILDER,
      invocationType: "RequestResponse",
      body: {
        bucket: BUCKET,
        package_key: `packages/fixtures/echo-tool/0.0.1@${checksum}.difypkg`,
        output_key: codeKey,
        arch: "arm64",
        python_version: "3.12",
        // Lambda's 250 MB unzipped, less the layer (PLUGIN_LAYER_BYTES).
        max_unzipped_bytes: 262_144_000 - 60_000,
      },
    });
    const name = pluginFunctionName("dify-plugin-", plugin.uniqueIdentifier);
    const fn = fake.functions.get(name)!;
    expect(fn.configuration).toMatchObject({
      Runtime: "python3.12",
      Handler: "bootstrap.handler",
      Role: "arn:aws:iam::123456789012:role/dify-plugin",
      Layers: [{ Arn: "arn:aws:lambda:us-east-1:123456789012:layer:dify-plugin:3" }],
      Architectures: ["arm64"],
      MemorySize: 2048,
      Timeout: 600,
      State: "Active",
      Environment: {
        Variables: {
          AWS_LAMBDA_EXEC_WRAPPER: "/opt/dify-plugin-bootstrap",
          INSTALL_METHOD: "local",
          DIFY_PLUGIN_ENTRYPOINT: "main",
        },
      },
    });
    expect(fn.code).toEqual({ S3Bucket: BUCKET, S3Key: codeKey });
    expect(fn.tags["dify:plugin-unique-identifier"]).toBe(plugin.uniqueIdentifier);
    // The fake answered "Pending" twice: the runtime waited for "Active" before recording.
    expect(fake.callsOf("GetFunction").length).toBeGreaterThanOrEqual(3);

    expect(await rt.isInstalled(plugin.uniqueIdentifier)).toBe(true);
    const record = await items.get(runtimeRecordKey(plugin.uniqueIdentifier));
    expect(record?.data).toMatchObject({ function_name: name, code_key: codeKey });
    expect(Date.parse(String(record?.data.created_at))).not.toBeNaN();
    expect(progress.join("\n")).toMatch(
      /building plugin code for python3.12 \(arm64\)[\s\S]*waiting for the function to become active[\s\S]*is ready \(created\)/,
    );
  });

  it.each<{
    what: string;
    resource: Record<string, number>;
    env: Record<string, string>;
    memory: number;
    timeout: number;
  }>([
    // Official manifests declare 1 MiB: at 128 MB (1/14 of a vCPU) the SDK alone imports for half a minute.
    {
      what: "1 MiB (as official manifests declare) is raised to the 1024 MB floor",
      resource: { memory: MIB },
      env: {},
      memory: 1024,
      timeout: 600,
    },
    {
      what: "the floor follows PLUGIN_MIN_MEMORY_MB",
      resource: { memory: MIB },
      env: { PLUGIN_MIN_MEMORY_MB: "512" },
      memory: 512,
      timeout: 600,
    },
    {
      what: "20 GiB is capped at 10240 MB",
      resource: { memory: 20 * 1024 * MIB },
      env: {},
      memory: 10_240,
      timeout: 600,
    },
    {
      what: "resource.timeout (seconds) is used when declared",
      resource: { memory: 1536 * MIB, timeout: 120 },
      env: {},
      memory: 1536,
      timeout: 120,
    },
  ])("sizes the function from the manifest: $what", async ({ resource, env, memory, timeout }) => {
    const plugin = await echoTool(resource);
    await runtime(testConfig(env)).install(plugin, () => undefined);
    const fn = fake.functions.get(pluginFunctionName("dify-plugin-", plugin.uniqueIdentifier))!;
    expect(fn.configuration.MemorySize).toBe(memory);
    expect(fn.configuration.Timeout).toBe(timeout);
  });

  it("fails an install whose built code would not fit next to the layer in 250 MB, before CreateFunction", async () => {
    builder = (event) => ({
      code_key: (event as { output_key: string }).output_key,
      size_bytes: 90_000_000,
      unzipped_bytes: 262_100_000,
    });
    const plugin = await echoTool();
    const rt = runtime();
    await expect(rt.install(plugin, () => undefined)).rejects.toThrow(
      /plugin code is too large for AWS Lambda: 250\.0 MiB unzipped, and with the 0\.1 MiB layer a function may hold 250\.0 MiB/,
    );
    expect(fake.callsOf("CreateFunction")).toHaveLength(0);
    expect(await rt.isInstalled(plugin.uniqueIdentifier)).toBe(false);
  });

  it("places plugin functions in the configured subnets and security groups, and takes them out again", async () => {
    const plugin = await echoTool();
    const vpc = {
      PLUGIN_SUBNET_IDS: "subnet-0aaaaaaaaaaaaaaaa,subnet-0bbbbbbbbbbbbbbbb",
      PLUGIN_SECURITY_GROUP_IDS: "sg-0cccccccccccccccc",
    };
    await runtime(testConfig(vpc)).install(plugin, () => undefined);
    const fn = () => fake.functions.get(pluginFunctionName("dify-plugin-", plugin.uniqueIdentifier))!;
    expect(fn().configuration.VpcConfig).toEqual({
      SubnetIds: ["subnet-0aaaaaaaaaaaaaaaa", "subnet-0bbbbbbbbbbbbbbbb"],
      SecurityGroupIds: ["sg-0cccccccccccccccc"],
    });
    // Reinstalled without the setting: an update without VpcConfig would leave it in the VPC.
    await runtime().install(plugin, () => undefined);
    expect(fn().configuration.VpcConfig).toEqual({ SubnetIds: [], SecurityGroupIds: [] });
  });

  it("caps the timeout at Lambda's 900 s when PLUGIN_MAX_EXECUTION_TIMEOUT is longer", async () => {
    const plugin = await echoTool();
    await runtime(testConfig({ PLUGIN_MAX_EXECUTION_TIMEOUT: "3600" })).install(plugin, () => undefined);
    expect(fake.functions.get(pluginFunctionName("dify-plugin-", plugin.uniqueIdentifier))!.configuration.Timeout).toBe(
      900,
    );
  });

  it("picks python3.13 for a 3.13 plugin and refuses one that needs a newer Python than Lambda has", async () => {
    const py313 = await echoTool({}, { version: "3.13" });
    await runtime().install(py313, () => undefined);
    expect(fake.functions.get(pluginFunctionName("dify-plugin-", py313.uniqueIdentifier))!.configuration.Runtime).toBe(
      "python3.13",
    );

    const py314 = await echoTool({}, { version: "3.14" });
    await expect(runtime().install(py314, () => undefined)).rejects.toThrow(
      /no AWS Lambda Python runtime for meta.runner.version "3.14"/,
    );
    expect(fake.callsOf("Invoke")).toHaveLength(1);
  });

  it("reinstalling updates the existing function's code and configuration", async () => {
    const plugin = await echoTool({ memory: 256 * MIB });
    await runtime().install(plugin, () => undefined);
    const progress: string[] = [];
    await runtime(testConfig({ PLUGIN_MAX_EXECUTION_TIMEOUT: "300" })).install(plugin, (l) => progress.push(l));

    expect(fake.callsOf("CreateFunction")).toHaveLength(1);
    expect(fake.callsOf("UpdateFunctionCode")).toHaveLength(1);
    expect(fake.callsOf("UpdateFunctionConfiguration")[0]?.body).toMatchObject({
      MemorySize: 1024,
      Timeout: 300,
      Runtime: "python3.12",
    });
    const fn = fake.functions.get(pluginFunctionName("dify-plugin-", plugin.uniqueIdentifier))!;
    expect(fn.configuration).toMatchObject({ Timeout: 300, LastUpdateStatus: "Successful" });
    expect(progress.at(-1)).toMatch(/is ready \(updated\)/);
  });

  it("fails the install with the builder's error and creates no function", async () => {
    builder = () => ({
      error: "pip install failed: no matching distribution for numpy==0.0.1",
      log_tail: "ERROR: ...",
    });
    const plugin = await echoTool();
    const rt = runtime();
    await expect(rt.install(plugin, () => undefined)).rejects.toThrow(
      /plugin build failed: pip install failed: no matching distribution/,
    );
    expect(fake.callsOf("CreateFunction")).toHaveLength(0);
    expect([...fake.functions.keys()]).toEqual([BUILDER]);
    expect(await rt.isInstalled(plugin.uniqueIdentifier)).toBe(false);
  });

  it("fails the install when the builder function itself crashes", async () => {
    builder = () => {
      throw Object.assign(new Error("Task timed out after 900.00 seconds"), { name: "Sandbox.Timedout" });
    };
    await expect(runtime().install(await echoTool(), () => undefined)).rejects.toThrow(
      /builder crashed \(Unhandled\): Sandbox.Timedout: Task timed out/,
    );
    expect(fake.callsOf("CreateFunction")).toHaveLength(0);
  });

  it("deletes a function that fails to become active and reports Lambda's reason", async () => {
    const failing = await LambdaService.start({
      handlers: { [BUILDER]: defaultBuilder },
      settle: () => ({ ok: false, code: "InvalidZipFileException", reason: "Could not unzip uploaded file." }),
    });
    const client = createLambdaClient({
      endpoint: failing.endpoint,
      region: "us-east-1",
      credentials: { accessKeyId: "t", secretAccessKey: "t" },
    });
    try {
      const rt = new LambdaPluginRuntime({
        config: testConfig(),
        bucket: BUCKET,
        items,
        lambda: client,
        callbackSecret: daemonKeySource(testConfig()),
        wait: { minDelaySeconds: 0.01, maxDelaySeconds: 0.05, maxWaitSeconds: 5 },
      });
      const plugin = await echoTool();
      await expect(rt.install(plugin, () => undefined)).rejects.toThrow(
        /failed to become active: InvalidZipFileException: Could not unzip uploaded file/,
      );
      expect(failing.callsOf("DeleteFunction")).toHaveLength(1);
      expect([...failing.functions.keys()]).toEqual([BUILDER]);
      expect(await rt.isInstalled(plugin.uniqueIdentifier)).toBe(false);
    } finally {
      client.destroy();
      await failing.close();
    }
  });

  it("refuses to take over a function of the same name that runs another plugin", async () => {
    const plugin = await echoTool();
    await runtime().install(plugin, () => undefined);
    fake.functions.get(pluginFunctionName("dify-plugin-", plugin.uniqueIdentifier))!.tags = {
      "dify:plugin-unique-identifier-sha256": "0".repeat(64),
    };
    await expect(runtime().install(plugin, () => undefined)).rejects.toThrow(/does not belong to plugin/);
    expect(fake.callsOf("UpdateFunctionCode")).toHaveLength(0);
  });

  it("remove deletes the function and the record; removing again is not an error", async () => {
    const plugin = await echoTool();
    const rt = runtime();
    await rt.install(plugin, () => undefined);
    await rt.remove(plugin.uniqueIdentifier);
    expect(fake.functions.has(pluginFunctionName("dify-plugin-", plugin.uniqueIdentifier))).toBe(false);
    expect(await rt.isInstalled(plugin.uniqueIdentifier)).toBe(false);
    await expect(rt.remove(plugin.uniqueIdentifier)).resolves.toBeUndefined();
  });
});

describe("Installer with the Lambda runtime", () => {
  it("installs without reading the package from the blob store: the builder reads it from the bucket", async () => {
    const stored = new Map<string, Uint8Array>();
    const reads: string[] = [];
    const blobs: BlobStore = {
      put: async (key, body) => void stored.set(key, body),
      get: async (key) => (reads.push(key), stored.get(key)),
      exists: async (key) => stored.has(key),
      delete: async (key) => void stored.delete(key),
    };
    const packages = new PackageRecords(items, blobs);
    const intake = new PackageIntake(packages, {
      limits: DEFAULT_PACKAGE_LIMITS,
      forceVerifyingSignature: false,
      extraPublicKeysPem: [],
    });
    const tasks = new InstallTasks(items);
    const jobs: Array<{ tenantId: string; taskId: string }> = [];
    const installer = new Installer({
      packages,
      intake,
      installations: new Installations(items),
      tasks,
      runtime: runtime(),
      marketplace: {} as Marketplace,
      queue: { enqueue: async (job) => void jobs.push(job) },
      runtimeType: "serverless",
      claims: new RuntimeClaims(items, { installLeaseMs: 60_000, removalLeaseMs: 60_000 }),
      installTimeoutMs: 60_000,
    });
    const { unique_identifier: uid } = await intake.accept(await buildPackage(filesOf(ECHO_TOOL)), false);

    const start = await installer.installFromIdentifiers(TENANT, [uid], "package", [{}]);
    for (const job of jobs) await installer.runTask(job.tenantId, job.taskId);

    const task = (await tasks.get(TENANT, start.task_id))?.task;
    expect(task?.plugins.map((p) => [p.status, p.message])).toEqual([["success", "installed"]]);
    expect(fake.callsOf("Invoke")[0]?.body).toMatchObject({ bucket: BUCKET, package_key: packageBlobKey(uid) });
    expect(fake.functions.has(pluginFunctionName("dify-plugin-", uid))).toBe(true);
    // Before, every install downloaded and unzipped the whole package only to hand it to a runtime that ignored it.
    expect(reads).toEqual([]);
  });
});

describe("LambdaPluginRuntime sessions (Lambda service faked over HTTP, scripted function output)", () => {
  let plugin: Plugin;
  let rt: LambdaPluginRuntime;

  beforeEach(async () => {
    plugin = await echoTool();
    rt = runtime();
    await rt.install(plugin, () => undefined);
  });

  const scripted = (parts: (payload: unknown) => Iterable<StreamPart>): StreamHandler =>
    async function* (payload) {
      yield* parts(JSON.parse(new TextDecoder().decode(payload)));
    };

  it("streams the session's messages in order, whatever the payload chunk boundaries", async () => {
    const words = ["héllo", "wörld", "✓ done", "日本語"];
    fake.stream = scripted((event) => {
      const sid = (event as { request: PluginRequest }).request.session_id;
      const text =
        "plain text the SDK printed\n" +
        `${JSON.stringify({ event: "heartbeat", session_id: null, data: null })}\n` +
        `${JSON.stringify({ event: "log", data: { level: "INFO", message: "starting" } })}\n` +
        words
          .slice(0, 2)
          .map((w) => sessionLine(sid, "stream", { text: w }))
          .join("") +
        // Two events on one line, as the SDK can write them under gevent.
        words
          .slice(2)
          .map((w) => sessionLine(sid, "stream", { text: w }).trimEnd())
          .join("") +
        "\n" +
        sessionLine("another-session", "stream", { text: "not mine" }) +
        sessionLine(sid, "end", null);
      return [...splitEverywhere(encoder.encode(text)), { complete: {} }];
    });

    const outputs = await collect(rt.invoke(plugin.uniqueIdentifier, request({ words }), invokeOptions()));
    expect(outputs).toEqual([...words.map((w) => ({ type: "stream", data: { text: w } })), { type: "end" }]);
  });

  it("sends the request with a callback token bound to the session and tenant", async () => {
    let event:
      | { request: PluginRequest; callback: { url: string; token: string }; timeout_seconds: number }
      | undefined;
    fake.stream = scripted((e) => {
      event = e as typeof event;
      return [{ payload: encoder.encode(sessionLine(event!.request.session_id, "end", null)) }];
    });
    const req = request({ provider: "echo", tool: "echo" }, "session-42");
    await collect(rt.invoke(plugin.uniqueIdentifier, req, invokeOptions()));

    expect(event?.request).toEqual(req);
    expect(event?.timeout_seconds).toBe(600);
    expect(event?.callback.url).toBe("https://daemon.example.com");
    const token = event!.callback.token;
    expect(verifySessionCallbackToken(token, "session-42", TENANT, SECRET)).toBe(true);
    expect(verifySessionCallbackToken(token, "session-43", TENANT, SECRET)).toBe(false);
    expect(verifySessionCallbackToken(token, "session-42", "tenant-2", SECRET)).toBe(false);
    expect(verifySessionCallbackToken(token, "session-42", TENANT, "another-key")).toBe(false);
    const tampered = (token[0] === "A" ? "B" : "A") + token.slice(1);
    expect(verifySessionCallbackToken(tampered, "session-42", TENANT, SECRET)).toBe(false);
    expect(verifySessionCallbackToken(`${token}x`, "session-42", TENANT, SECRET)).toBe(false);
    expect(verifySessionCallbackToken("", "session-42", TENANT, SECRET)).toBe(false);
  });

  it("turns a function error in InvokeComplete into a runtime error, then ends", async () => {
    fake.stream = scripted((event) => {
      const sid = (event as { request: PluginRequest }).request.session_id;
      return [
        { payload: encoder.encode(sessionLine(sid, "stream", { text: "partial" })) },
        {
          complete: {
            ErrorCode: "Runtime.ExitError",
            ErrorDetails: "RequestId: x Error: Runtime exited with error: signal: killed",
          },
        },
      ];
    });
    const outputs = await collect(rt.invoke(plugin.uniqueIdentifier, request({}), invokeOptions()));
    expect(outputs).toHaveLength(3);
    expect(outputs[0]).toEqual({ type: "stream", data: { text: "partial" } });
    expect(outputs[1]).toMatchObject({
      type: "error",
      data: {
        error_type: "PluginRuntimeError",
        message:
          "Plugin runtime request failed: Runtime.ExitError: RequestId: x Error: Runtime exited with error: signal: killed",
        args: { request_id: expect.any(String) },
      },
    });
    expect(outputs[2]).toEqual({ type: "end" });
  });

  it("synthesises the end a plugin did not send", async () => {
    fake.stream = scripted((event) => {
      const sid = (event as { request: PluginRequest }).request.session_id;
      return [{ payload: encoder.encode(sessionLine(sid, "stream", { text: "only" }).trimEnd()) }, { complete: {} }];
    });
    expect(await collect(rt.invoke(plugin.uniqueIdentifier, request({}), invokeOptions()))).toEqual([
      { type: "stream", data: { text: "only" } },
      { type: "end" },
    ]);
  });

  it("reports a function that produced no session output at all", async () => {
    fake.stream = scripted(() => [{ complete: {} }]);
    const outputs = await collect(rt.invoke(plugin.uniqueIdentifier, request({}), invokeOptions()));
    expect(outputs).toEqual([
      {
        type: "error",
        data: expect.objectContaining({ message: "Plugin runtime request failed: no valid session response" }),
      },
      { type: "end" },
    ]);
  });

  it("stops on abort: ends the session and closes the connection to Lambda", async () => {
    let functionSawClose: () => void = () => undefined;
    const closed = new Promise<void>((resolve) => (functionSawClose = resolve));
    fake.stream = async function* (payload, _fn, signal) {
      const sid = (JSON.parse(new TextDecoder().decode(payload)) as { request: PluginRequest }).request.session_id;
      yield { payload: encoder.encode(sessionLine(sid, "stream", { text: "first" })) };
      await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
      functionSawClose();
    };
    const controller = new AbortController();
    const outputs: SessionOutput[] = [];
    for await (const output of rt.invoke(plugin.uniqueIdentifier, request({}), invokeOptions(controller.signal))) {
      outputs.push(output);
      if (outputs.length === 1) controller.abort();
    }
    expect(outputs).toEqual([{ type: "stream", data: { text: "first" } }, { type: "end" }]);
    await closed;
  });

  /** A model plugin answering text embeddings (one vector per text: its length and index) and token counts. */
  const embeddingPlugin: StreamHandler = async function* (payload) {
    const event = JSON.parse(new TextDecoder().decode(payload)) as { request: PluginRequest };
    const { session_id: sid, data } = event.request;
    const texts = data.texts as string[];
    if (texts.some((t) => t.startsWith("fail"))) {
      yield {
        payload: encoder.encode(
          sessionLine(sid, "error", { error_type: "InvokeRateLimitError", message: "slow down", args: {} }),
        ),
      };
      return;
    }
    const answer =
      data.action === "get_text_embedding_num_tokens"
        ? { num_tokens: texts.map((t) => t.length) }
        : {
            model: "embed-1",
            embeddings: texts.map((t) => [t.length, Number(t.slice(-1))]),
            usage: {
              tokens: texts.length,
              total_tokens: texts.length,
              unit_price: "0.0000001",
              price_unit: "1",
              total_price: (texts.length / 10_000_000).toFixed(7),
              currency: "USD",
              latency: 0.5,
            },
          };
    yield { payload: encoder.encode(sessionLine(sid, "stream", answer) + sessionLine(sid, "end", {})) };
  };
  /** Eight texts of 1 MB: 8 MB in one request, over Lambda's 6 MB. */
  const bigTexts = () => Array.from({ length: 8 }, (_, i) => `${"a".repeat(1_000_000)}${i}`);
  const embeddingRequest = (action: string, texts: string[]) =>
    request({
      type: "model",
      action,
      provider: "embedder",
      model_type: "text-embedding",
      model: "embed-1",
      credentials: {},
      texts,
      input_type: "document",
    });

  it("splits a text embedding over 6 MB into serial invocations under the limit and merges vectors and usage, as upstream's serverless runtime", async () => {
    fake.stream = embeddingPlugin;
    const outputs = await collect(
      rt.invoke(plugin.uniqueIdentifier, embeddingRequest("invoke_text_embedding", bigTexts()), invokeOptions()),
    );
    const invocations = fake.callsOf("InvokeWithResponseStream");
    expect(
      invocations.map((c) => (c.body as { request: { data: { texts: string[] } } }).request.data.texts.length),
    ).toEqual([6, 2]);
    for (const c of invocations) expect(Buffer.byteLength(JSON.stringify(c.body))).toBeLessThanOrEqual(6_291_456);
    expect(outputs).toHaveLength(2);
    const merged = (outputs[0] as { data: { model: string; embeddings: number[][]; usage: Record<string, unknown> } })
      .data;
    expect(merged.model).toBe("embed-1");
    expect(merged.embeddings).toEqual(bigTexts().map((t, i) => [t.length, i]));
    expect(merged.usage).toEqual({
      tokens: 8,
      total_tokens: 8,
      unit_price: "0.0000001",
      price_unit: "1",
      total_price: "0.0000008",
      currency: "USD",
      latency: 1,
    });
    expect(outputs[1]).toEqual({ type: "end" });
  });

  it("splits a token count over 6 MB the same way, counts in the order of the texts", async () => {
    fake.stream = embeddingPlugin;
    const outputs = await collect(
      rt.invoke(
        plugin.uniqueIdentifier,
        embeddingRequest("get_text_embedding_num_tokens", bigTexts()),
        invokeOptions(),
      ),
    );
    expect(fake.callsOf("InvokeWithResponseStream")).toHaveLength(2);
    expect(outputs).toEqual([
      { type: "stream", data: { num_tokens: bigTexts().map((t) => t.length) } },
      { type: "end" },
    ]);
  });

  it("fails a batched request when one text alone is over the limit, or a batch fails, with what the plugin said", async () => {
    fake.stream = embeddingPlugin;
    const oversized = await collect(
      rt.invoke(
        plugin.uniqueIdentifier,
        embeddingRequest("invoke_text_embedding", ["small", "b".repeat(6 * MIB + 1)]),
        invokeOptions(),
      ),
    );
    expect(oversized[0]).toMatchObject({
      type: "error",
      data: { message: expect.stringMatching(/^ServerlessPayloadTooLarge: text 1 alone makes a \d+-byte request/) },
    });
    expect(fake.callsOf("InvokeWithResponseStream")).toHaveLength(0);

    const texts = bigTexts();
    texts[7] = `fail${texts[7]}`;
    const failing = await collect(
      rt.invoke(plugin.uniqueIdentifier, embeddingRequest("invoke_text_embedding", texts), invokeOptions()),
    );
    expect(failing).toEqual([
      { type: "error", data: { error_type: "InvokeRateLimitError", message: "slow down", args: {} } },
      { type: "end" },
    ]);
  });

  it("refuses a request over Lambda's 6 MB payload limit without calling Lambda", async () => {
    const outputs = await collect(
      rt.invoke(plugin.uniqueIdentifier, request({ text: "x".repeat(6 * MIB) }), invokeOptions()),
    );
    expect(outputs).toHaveLength(2);
    expect(outputs[0]).toMatchObject({ type: "error", data: { error_type: "PluginRuntimeError" } });
    const message = (outputs[0] as { data: { message: string } }).data.message;
    const size = Number(/^request too large for the plugin runtime: (\d+) bytes > 6291456$/.exec(message)?.[1]);
    expect(size).toBeGreaterThan(6 * MIB);
    expect(outputs[1]).toEqual({ type: "end" });
    expect(fake.callsOf("InvokeWithResponseStream")).toHaveLength(0);
  });

  it("retries throttling and 5xx answers before the first byte, up to 3 times", async () => {
    fake.stream = scripted((event) => [
      { payload: encoder.encode(sessionLine((event as { request: PluginRequest }).request.session_id, "end", null)) },
    ]);
    fake.failNext("InvokeWithResponseStream", { status: 429, type: "TooManyRequestsException" }, 2);
    fake.failNext("InvokeWithResponseStream", { status: 502, type: "ResourceNotReadyException" }, 1);
    expect(await collect(rt.invoke(plugin.uniqueIdentifier, request({}), invokeOptions()))).toEqual([{ type: "end" }]);
    expect(fake.callsOf("InvokeWithResponseStream")).toHaveLength(4);

    fake.calls.length = 0;
    fake.failNext("InvokeWithResponseStream", { status: 500, type: "ServiceException", message: "internal" }, 4);
    const outputs = await collect(rt.invoke(plugin.uniqueIdentifier, request({}), invokeOptions()));
    expect(fake.callsOf("InvokeWithResponseStream")).toHaveLength(4);
    expect(outputs[0]).toMatchObject({
      type: "error",
      data: { message: "Plugin runtime request failed: ServiceException: internal", args: { status_code: 500 } },
    });
    expect(outputs[1]).toEqual({ type: "end" });
  });

  it("does not retry client errors", async () => {
    fake.failNext("InvokeWithResponseStream", {
      status: 400,
      type: "InvalidRequestContentException",
      message: "bad json",
    });
    const outputs = await collect(rt.invoke(plugin.uniqueIdentifier, request({}), invokeOptions()));
    expect(fake.callsOf("InvokeWithResponseStream")).toHaveLength(1);
    expect(outputs[0]).toMatchObject({
      type: "error",
      data: { message: "Plugin runtime request failed: InvalidRequestContentException: bad json" },
    });
  });

  it("says the plugin is not installed when its function does not exist", async () => {
    await rt.remove(plugin.uniqueIdentifier);
    const outputs = await collect(rt.invoke(plugin.uniqueIdentifier, request({}), invokeOptions()));
    expect(outputs[0]).toMatchObject({
      type: "error",
      data: { error_type: "PluginRuntimeError", message: expect.stringMatching(/is not installed/) },
    });
    expect(outputs[1]).toEqual({ type: "end" });
  });
});

// ---------------------------------------------------------------------------------------------
// The real layer bootstrap in a local execution environment

/** A stdlib-only plugin speaking the SDK's stdio protocol: enough to exercise the bootstrap without the SDK. */
const STUB_PLUGIN = String.raw`
import json, os, sys, threading, time

lock = threading.Lock()

def emit(obj):
    with lock:
        sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n\n")
        sys.stdout.flush()

def beat():
    while True:
        emit({"event": "heartbeat", "session_id": None, "data": None})
        time.sleep(5)

print("stub plugin starting (not a protocol line)", flush=True)
# a plugin importing a heavy SDK at a small CPU share: ready only after a while
time.sleep(float(os.environ.get("STUB_BOOT_SECONDS") or 0))
threading.Thread(target=beat, daemon=True).start()
while True:
    raw = sys.stdin.readline()
    if not raw:
        break
    raw = raw.strip()
    if not raw:
        continue
    msg = json.loads(raw)
    if msg.get("event") != "request":
        continue
    sid, data = msg["session_id"], msg["data"]
    if data.get("action") == "crash":
        sys.stderr.write("stub plugin crashing on purpose\n")
        sys.stderr.flush()
        os._exit(3)
    for word in data.get("words", []):
        emit({"event": "session", "session_id": sid, "data": {"type": "stream", "data": {"word": word, "pid": os.getpid()}}})
    emit({"event": "session", "session_id": sid, "data": {"type": "end", "data": {}}})
`;

function pythonExecutable(candidates: Array<string | undefined>, probe: string): string | undefined {
  for (const candidate of candidates) {
    if (!candidate) continue;
    try {
      return execFileSync(candidate, ["-c", `${probe}\nimport sys; print(sys.executable)`], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
        timeout: 20_000,
      }).trim();
    } catch {
      // Not there, or lacking what the probe imports.
    }
  }
  return undefined;
}

/** Any Python 3 runs the bootstrap (stdlib only). */
const bootstrapPython =
  pythonExecutable(["python3", "python"], "import sys; assert sys.version_info >= (3, 8)") ?? "python3";
describe("LambdaPluginRuntime with the real layer bootstrap (Lambda service faked, stub stdio plugin)", () => {
  let taskRoot: string;
  let envs: SandboxPool;
  let plugin: Plugin;
  let rt: LambdaPluginRuntime;

  beforeAll(() => {
    taskRoot = mkdtempSync(join(tmpdir(), "stub-plugin-"));
    writeFileSync(join(taskRoot, "main.py"), STUB_PLUGIN);
  });
  afterAll(() => rmSync(taskRoot, { recursive: true, force: true }));

  beforeEach(async () => {
    envs = sandboxes({ taskRoot, runtimePython: bootstrapPython, pluginPython: bootstrapPython });
    fake.stream = envs.handler;
    plugin = await echoTool();
    rt = runtime();
    await rt.install(plugin, () => undefined);
  });
  afterEach(async () => {
    const output = [...envs.running.values()].map((s) => s.output).join("\n");
    await envs.stop();
    // The environments' logs (CloudWatch, in Lambda), for debugging a failure.
    if (process.env.DEBUG_LAMBDA_SANDBOX && output) console.log(output);
  });

  it("streams a session from a warm plugin process, session after session", async () => {
    const first = await collect(
      rt.invoke(plugin.uniqueIdentifier, request({ words: ["one", "twö", "three"] }), invokeOptions()),
    );
    expect(first.map((o) => (o.type === "stream" ? (o.data as { word: string }).word : o.type))).toEqual([
      "one",
      "twö",
      "three",
      "end",
    ]);

    const second = await collect(rt.invoke(plugin.uniqueIdentifier, request({ words: ["again"] }), invokeOptions()));
    expect(second).toHaveLength(2);
    // Same plugin process: the bootstrap kept it running between invocations.
    expect((second[0] as { data: { pid: number } }).data.pid).toBe((first[0] as { data: { pid: number } }).data.pid);
  });

  it("reports a plugin crash as a runtime error with the plugin's stderr, then serves the next session", async () => {
    const crashed = await collect(rt.invoke(plugin.uniqueIdentifier, request({ action: "crash" }), invokeOptions()));
    expect(crashed).toHaveLength(2);
    expect(crashed[0]).toMatchObject({
      type: "error",
      data: {
        error_type: "PluginRuntimeError",
        message: expect.stringMatching(/plugin process exited: 3.*crashing on purpose/),
      },
    });
    expect(crashed[1]).toEqual({ type: "end" });

    const next = await collect(rt.invoke(plugin.uniqueIdentifier, request({ words: ["back"] }), invokeOptions()));
    expect(next.map((o) => o.type)).toEqual(["stream", "end"]);
  });

  it("finishes init before the plugin is ready and waits for its first heartbeat in the first invocation", async () => {
    // Lambda's init phase lasts at most 10 s; a plugin booting longer must not be waited for there.
    await envs.stop();
    envs = sandboxes({
      taskRoot,
      runtimePython: bootstrapPython,
      pluginPython: bootstrapPython,
      env: { STUB_BOOT_SECONDS: "3" },
    });
    fake.stream = envs.handler;
    const started = Date.now();
    const outputs = await collect(rt.invoke(plugin.uniqueIdentifier, request({ words: ["late"] }), invokeOptions()));
    expect(outputs.map((o) => o.type)).toEqual(["stream", "end"]);
    const sandbox = [...envs.running.values()][0]!;
    expect(sandbox.api.firstNextAt! - sandbox.startedAt).toBeLessThan(2_000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(3_000);
  });

  it("fails the first invocation, not init, when the plugin is not ready within the startup timeout", async () => {
    await envs.stop();
    envs = sandboxes({
      taskRoot,
      runtimePython: bootstrapPython,
      pluginPython: bootstrapPython,
      env: { STUB_BOOT_SECONDS: "30", DIFY_PLUGIN_STARTUP_TIMEOUT: "1" },
    });
    fake.stream = envs.handler;
    const outputs = await collect(rt.invoke(plugin.uniqueIdentifier, request({ words: ["never"] }), invokeOptions()));
    expect(outputs[0]).toMatchObject({
      type: "error",
      data: {
        error_type: "PluginRuntimeError",
        message: expect.stringMatching(/did not become ready \(no heartbeat\) within 1 s/),
      },
    });
    expect(outputs[1]).toEqual({ type: "end" });
    expect([...envs.running.values()][0]!.api.initError).toBeUndefined();
  });

  it("reports the runtime dying mid-invocation as Lambda does (InvokeComplete error)", async () => {
    const sandboxStarted = collect(rt.invoke(plugin.uniqueIdentifier, request({ words: ["warm"] }), invokeOptions()));
    await sandboxStarted;
    const sandbox = [...envs.running.values()][0]!;
    // Kill the environment while the next invocation is queued on the Runtime API.
    fake.stream = async function* (payload, fn) {
      const output = sandbox.api.invoke(payload, { timeoutMs: 10_000, functionArn: fn.arn });
      await sandbox.stop();
      yield* streamFromRuntime(output);
    };
    const outputs = await collect(rt.invoke(plugin.uniqueIdentifier, request({ words: ["lost"] }), invokeOptions()));
    expect(outputs.at(-2)).toMatchObject({
      type: "error",
      data: { message: expect.stringMatching(/^Plugin runtime request failed: Runtime.ExitError: /) },
    });
    expect(outputs.at(-1)).toEqual({ type: "end" });
  });
});

describe("LambdaPluginRuntime with the real bootstrap and the Dify plugin SDK (Lambda service faked, echo-tool fixture)", () => {
  let envs: SandboxPool;
  let venv: SdkVenv;
  beforeAll(() => {
    // The SDK needs Python >= 3.12 with dify_plugin installed: the fixture's pinned requirements.
    venv = buildSdkVenv({
      uv: inject("uvPath"),
      python: inject("pythonPath"),
      requirements: join(ECHO_TOOL, "requirements.txt"),
    });
  }, 300_000);
  afterAll(() => venv?.remove());
  afterEach(async () => envs?.stop());

  it("runs a tool session of the echo-tool fixture end to end", async () => {
    envs = sandboxes({ taskRoot: ECHO_TOOL, runtimePython: bootstrapPython, pluginPython: venv.python });
    fake.stream = envs.handler;
    const plugin = await echoTool();
    const rt = runtime();
    await rt.install(plugin, () => undefined);
    const outputs = await collect(
      rt.invoke(
        plugin.uniqueIdentifier,
        request({ provider: "echo", tool: "stream_chunks", credentials: {}, tool_parameters: { count: 3 } }),
        invokeOptions(),
      ),
    );
    const texts = outputs.flatMap((o) =>
      o.type === "stream" ? [(o.data as { message?: { text?: string } }).message?.text] : [],
    );
    expect(texts).toEqual(["chunk-0", "chunk-1", "chunk-2"]);
    expect(outputs.at(-1)).toEqual({ type: "end" });
  }, 120_000);

  it("runs a plugin from what a deployment holds: the default (copy) layer and the builder's code zip, the SDK only in the zip, the SDK savings from the layer", async () => {
    // The layer as `cdk synth` stages it by default: the bootstrap alone, laid out without Python.
    const app = new App({ outdir: mkdtempSync(join(tmpdir(), "layer-cdk-")) });
    const stack = new Stack(app, "Layer");
    const pluginRuntime = new PluginRuntime(stack, "PluginRuntime", {
      layersDir: fileURLToPath(new URL("../../layers/", import.meta.url)),
      functionPrefix: "test-plugin-",
      arch: "arm64",
      packageBucket: new PackageBucket(stack, "Packages"),
    });
    const layer = join(app.outdir, (pluginRuntime.layer.node.tryFindChild("Code") as Asset).assetPath);
    // The code zip as layers/plugin-builder makes it for this machine, unpacked as Lambda does.
    const taskRoot = mkdtempSync(join(tmpdir(), "built-echo-"));
    const pkg = join(taskRoot, "..", `${taskRoot.split("/").at(-1)}.difypkg`);
    writeFileSync(pkg, await buildPackage(filesOf(ECHO_TOOL)));
    const driver = [
      "import json, sys, tempfile, zipfile",
      "sys.path.insert(0, sys.argv[1])",
      "import handler",
      "work = tempfile.mkdtemp()",
      "r = handler.build(sys.argv[2], work + '/code.zip', sys.argv[3], '3.12', work)",
      "assert 'error' not in r, r",
      "zipfile.ZipFile(work + '/code.zip').extractall(sys.argv[4])",
      "print(json.dumps(r['method']))",
    ].join("\n");
    const arch = process.arch === "arm64" ? "arm64" : "x86_64";
    const method = execFileSync(
      inject("pythonPath"),
      ["-c", driver, fileURLToPath(new URL("../../layers/plugin-builder/", import.meta.url)), pkg, arch, taskRoot],
      {
        encoding: "utf8",
        env: { ...process.env, UV_PATH: inject("uvPath") },
        timeout: 300_000,
      },
    );
    expect(JSON.parse(method)).toBe("requirements.txt (resolved now), uv pip install");
    try {
      // The managed runtime's own interpreter (no SDK of its own) runs bootstrap and plugin, as in Lambda.
      envs = sandboxes({
        bootstrap: join(layer, "dify-plugin-bootstrap"),
        taskRoot,
        runtimePython: inject("pythonPath"),
      });
      fake.stream = envs.handler;
      const plugin = await echoTool();
      const rt = runtime();
      await rt.install(plugin, () => undefined);
      const outputs = await collect(
        rt.invoke(
          plugin.uniqueIdentifier,
          request({ provider: "echo", tool: "stream_chunks", credentials: {}, tool_parameters: { count: 2 } }),
          invokeOptions(),
        ),
      );
      const texts = outputs.flatMap((o) =>
        o.type === "stream" ? [(o.data as { message?: { text?: string } }).message?.text] : [],
      );
      expect(texts, JSON.stringify(outputs)).toEqual(["chunk-0", "chunk-1"]);
      // The plugin's Python, with the environment the bootstrap starts it in, has the SDK savings.
      const childEnv = execFileSync(
        inject("pythonPath"),
        [
          "-c",
          "import json, sys; sys.path.insert(0, sys.argv[1]); from dify_lambda_bootstrap.__main__ import child_env; print(json.dumps(child_env(sys.argv[2])))",
          join(layer, "python"),
          taskRoot,
        ],
        { encoding: "utf8" },
      );
      const probe = [
        "import json, sys",
        "from typing import Any",
        "import dify_plugin",
        "from dify_plugin.core.server.stdio import request_reader as r",
        "print(json.dumps({'loaded': '_dify_daemon_speedups' in sys.modules,",
        "  'oneTypeAdapter': r.TypeAdapter(dict[str, Any]) is r.TypeAdapter(dict[str, Any])}))",
      ].join("\n");
      const seen = execFileSync(inject("pythonPath"), ["-c", probe], {
        cwd: taskRoot,
        env: JSON.parse(childEnv),
        encoding: "utf8",
      });
      expect(JSON.parse(seen)).toEqual({ loaded: true, oneTypeAdapter: true });
    } finally {
      rmSync(taskRoot, { recursive: true, force: true });
      rmSync(pkg, { force: true });
    }
  }, 400_000);
});

// ---------------------------------------------------------------------------------------------

describe("LambdaInstallQueue (Lambda service faked over HTTP)", () => {
  it("hands each task to the install worker with an asynchronous invoke", async () => {
    const received: unknown[] = [];
    const worker = await LambdaService.start({ handlers: { "install-worker": (event) => void received.push(event) } });
    const client = createLambdaClient({
      endpoint: worker.endpoint,
      region: "us-east-1",
      credentials: { accessKeyId: "t", secretAccessKey: "t" },
    });
    try {
      const ranHere: string[] = [];
      const queue = new LambdaInstallQueue(
        "install-worker",
        async (_tenant, task) => void ranHere.push(task),
        () => client,
      );
      await queue.enqueue({ tenantId: "t1", taskId: "task-1" });
      await worker.idle();
      expect(worker.callsOf("Invoke")).toEqual([
        expect.objectContaining({ functionName: "install-worker", invocationType: "Event" }),
      ]);
      expect(received.map((e) => installJobPayloadSchema.parse(e))).toEqual([{ tenantId: "t1", taskId: "task-1" }]);
      expect(ranHere).toEqual([]);
    } finally {
      client.destroy();
      await worker.close();
    }
  });

  it("fails the enqueue when Lambda does not accept the event", async () => {
    const worker = await LambdaService.start({ handlers: { "install-worker": () => undefined } });
    const client = createLambdaClient({
      endpoint: worker.endpoint,
      region: "us-east-1",
      credentials: { accessKeyId: "t", secretAccessKey: "t" },
      maxAttempts: 1,
    });
    try {
      worker.failNext("Invoke", { status: 429, type: "TooManyRequestsException", message: "Rate exceeded" });
      const queue = new LambdaInstallQueue(
        "install-worker",
        async () => undefined,
        () => client,
      );
      await expect(queue.enqueue({ tenantId: "t1", taskId: "task-1" })).rejects.toThrow(/Rate exceeded/);
    } finally {
      client.destroy();
      await worker.close();
    }
  });

  it("runs tasks in this process when no worker function is configured", async () => {
    const ran: string[] = [];
    const queue = new LambdaInstallQueue(undefined, async (tenant, task) => void ran.push(`${tenant}/${task}`));
    await queue.enqueue({ tenantId: "t1", taskId: "task-1" });
    await queue.idle();
    expect(ran).toEqual(["t1/task-1"]);
    await expect(queue.enqueue({ tenantId: "", taskId: "x" })).rejects.toThrow();
  });
});

// ---------------------------------------------------------------------------------------------

describe("callback tokens signed with the daemon key from Secrets Manager (moto emulator)", () => {
  let endpoint: AwsTestEndpoint;
  beforeAll(async () => {
    endpoint = await awsTestEndpoint();
  });
  afterAll(async () => endpoint?.release());

  it("reads the key once per process and signs every session with it", async () => {
    const client = createSecretsManagerClient(endpoint.clientConfig);
    try {
      const created = await client.send(
        new CreateSecretCommand({
          Name: `daemon-key-${crypto.randomUUID()}`,
          SecretString: "key-from-secrets-manager",
        }),
      );
      let reads = 0;
      client.middlewareStack.add(
        (next, context) => (args) => {
          if (context.commandName === "GetSecretValueCommand") reads++;
          return next(args);
        },
        { step: "initialize" },
      );
      const secrets = new SecretCache(client);
      const rt = new LambdaPluginRuntime({
        config: testConfig(),
        bucket: BUCKET,
        items,
        lambda,
        callbackSecret: () => secrets.value(created.ARN!),
      });
      const plugin = await echoTool();
      await rt.install(plugin, () => undefined);
      const tokens: string[] = [];
      fake.stream = async function* (payload) {
        const event = JSON.parse(new TextDecoder().decode(payload)) as {
          request: PluginRequest;
          callback: { token: string };
        };
        tokens.push(event.callback.token);
        yield { payload: encoder.encode(sessionLine(event.request.session_id, "end", null)) };
      };
      await collect(rt.invoke(plugin.uniqueIdentifier, request({}, "s-1"), invokeOptions()));
      await collect(rt.invoke(plugin.uniqueIdentifier, request({}, "s-2"), invokeOptions()));
      expect(reads).toBe(1);
      expect(verifySessionCallbackToken(tokens[0], "s-1", TENANT, "key-from-secrets-manager")).toBe(true);
      expect(verifySessionCallbackToken(tokens[1], "s-2", TENANT, "key-from-secrets-manager")).toBe(true);
      await expect(secrets.value(`${created.ARN!}-missing`)).rejects.toThrow();
    } finally {
      client.destroy();
    }
  });
});
