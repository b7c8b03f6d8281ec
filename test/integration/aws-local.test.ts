/**
 * `npm run start:aws-local` as a user runs it: the synthesised stack deployed on this machine,
 * the handler bundles and the plugin functions in local execution environments behind the
 * Lambda service emulator, the real plugin builder and layer bootstrap, S3/DynamoDB/Secrets
 * Manager on moto. The post-deploy smoke test (scripts/smoke.ts) runs against it over HTTP, with
 * the inner-API stand-in it serves as the stack's difyInnerApiUrl; then what only the AWS shape
 * has: API Gateway's own answers and limits, and the plugin function's cold start as measured.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { GetFunctionCommand, InvokeCommand, LambdaClient } from "@aws-sdk/client-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CompositionOutputs } from "../../src/aws-local/aws-composition.js";
import { ratePeriodMs, scheduledEvent } from "../../src/aws-local/event-schedule.js";
import type { EnvironmentReport } from "../../src/aws-local/function-runner.js";
import { freePort } from "../../src/aws-local/moto-server.js";
import { expectEveryPathPassed } from "../support/smoke-output.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const SMOKE = join(ROOT, "scripts", "smoke.ts");
const DAEMON_KEY = `aws-local-key-${crypto.randomUUID()}`;
const INNER_KEY = "aws-local-inner-api-key";
const START_TIMEOUT_MS = 300_000;

let command: ChildProcess;
let log = "";
let work: string;
let outputs: CompositionOutputs;
let standInPort: number;

function run(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", SMOKE, ...args], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    child.on("close", (code) => resolve({ code, output }));
  });
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "aws-local-test-"));
  standInPort = await freePort();
  const outputsFile = join(work, "outputs.json");
  command = spawn(
    "bash",
    [
      join(ROOT, "scripts", "start-aws-local.sh"),
      "--port",
      "0",
      "--host",
      "127.0.0.1",
      "--outputs",
      outputsFile,
      "--daemon-key",
      DAEMON_KEY,
      "--inner-api-key",
      INNER_KEY,
      "-c",
      "forceVerifyingSignature=false",
      "-c",
      `difyInnerApiUrl=http://127.0.0.1:${standInPort}`,
    ],
    // Its own process group, so that a failed test can still stop everything it started.
    { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], detached: true },
  );
  const keep = (d: Buffer) => (log = (log + d.toString()).slice(-200_000));
  command.stdout!.on("data", keep);
  command.stderr!.on("data", keep);
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!existsSync(outputsFile)) {
    if (command.exitCode !== null)
      throw new Error(`start:aws-local exited with ${command.exitCode}:\n${log.slice(-5000)}`);
    if (Date.now() > deadline)
      throw new Error(`start:aws-local was not ready within ${START_TIMEOUT_MS} ms:\n${log.slice(-5000)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  outputs = JSON.parse(readFileSync(outputsFile, "utf8")) as CompositionOutputs;
}, START_TIMEOUT_MS + 10_000);

afterAll(async () => {
  if (command && command.exitCode === null) {
    const exited = new Promise((resolve) => command.once("exit", resolve));
    command.kill("SIGTERM");
    const timer = setTimeout(() => process.kill(-command.pid!, "SIGKILL"), 20_000);
    await exited;
    clearTimeout(timer);
  }
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("npm run start:aws-local (Lambda service emulated on this machine; S3, DynamoDB, Secrets Manager on moto)", () => {
  it("prints the daemon URL under the stage, the key, and what differs from AWS", () => {
    expect(outputs.PluginDaemonUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/prod$/);
    expect(outputs.daemonKey).toBe(DAEMON_KEY);
    expect(log).toMatch(/What differs from AWS:/);
    expect(log).toMatch(/IAM is not enforced/);
  });

  it("passes the post-deploy smoke test: health, auth, upload, install, stream, backwards call, endpoint, storage over 64 KiB, a 5 MB request, uninstall", async () => {
    const { code, output } = await run([
      "--url",
      outputs.PluginDaemonUrl,
      "--key",
      DAEMON_KEY,
      "--inner-api-stand-in",
      `127.0.0.1:${standInPort}`,
      "--inner-api-key",
      INNER_KEY,
    ]);
    console.log(output);
    expect(code, `${output}\n--- start:aws-local output\n${log.slice(-20_000)}`).toBe(0);
    expectEveryPathPassed(output);
    expect(output).toMatch(/^10 passed, 0 failed$/m);
  }, 240_000);

  it("measured the plugin function's cold start (runtime init, plugin ready, first chunk) and served its later calls warm", async () => {
    const reports = (await (await fetch(outputs.environmentsUrl)).json()) as EnvironmentReport[];
    const plugin = reports.filter((r) => r.functionName.startsWith("difypluginda-plugin-"));
    expect(plugin.length, JSON.stringify(reports)).toBeGreaterThanOrEqual(1);
    const [first] = plugin;
    expect(first!.memorySizeMiB).toBe(1024);
    expect(first!.initMs).toBeGreaterThan(0);
    expect(first!.marks.pluginReady).toBeGreaterThan(first!.initMs!);
    expect(first!.firstChunkMs).toBeGreaterThanOrEqual(first!.marks.pluginReady!);
    // One environment served the smoke test's warm calls too, then went with the uninstall.
    expect(first!.invocations).toBeGreaterThan(1);
    expect(first!.state).toBe("stopped");
    expect(log).toMatch(
      /^cold start difypluginda-plugin-\S+ #\d+ \(1024 MB\): runtime init \d+ ms, plugin ready \d+ ms, first chunk \d+ ms/m,
    );
  });

  it("answers as API Gateway does outside the stage, for unknown routes and above its 10 MB payload limit", async () => {
    const base = outputs.PluginDaemonUrl;
    const outside = await fetch(base.replace(/\/prod$/, "/health/check"));
    expect(outside.status).toBe(403);
    expect(await outside.json()).toEqual({ message: "Forbidden" });

    const unknown = await fetch(`${base}/no/such/route`);
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toEqual({ code: "not_found", message: "route not found" });

    const tooLarge = await fetch(`${base}/plugin/t1/dispatch/tool/invoke`, {
      method: "POST",
      headers: { "X-Api-Key": DAEMON_KEY, "Content-Type": "application/json" },
      body: "x".repeat(10 * 1024 * 1024 + 1),
    });
    expect(tooLarge.status).toBe(413);
    expect(JSON.parse(((await tooLarge.json()) as { message: string }).message)).toMatchObject({
      error_type: "PluginDaemonBadRequestError",
    });

    // Above Lambda's 6 MB event but within API Gateway's 10 MB: the gateway cannot invoke the handler.
    const overEvent = await fetch(`${base}/plugin/t1/dispatch/tool/invoke`, {
      method: "POST",
      headers: { "X-Api-Key": DAEMON_KEY, "Content-Type": "application/json" },
      body: JSON.stringify({ padding: "x".repeat(7 * 1024 * 1024) }),
    });
    expect(overEvent.status).toBe(502);
    expect(JSON.parse(((await overEvent.json()) as { message: string }).message).message).toMatch(/6 MB limit/);
  });

  it("has the stack's functions in the Lambda service, reached through the real LambdaClient", async () => {
    const lambda = new LambdaClient({
      endpoint: outputs.lambdaEndpoint,
      region: "us-east-1",
      credentials: { accessKeyId: "test", secretAccessKey: "test" },
    });
    try {
      const names = Object.entries(outputs.functions);
      expect(names.map(([id]) => id.replace(/[0-9A-F]{8}$/, "")).sort()).toEqual(
        [
          "HandlersBackwardsInvocation",
          "HandlersDispatch",
          "HandlersInstallWorker",
          "HandlersManagement",
          "HandlersPublicEndpoint",
          "HandlersUpgradeCheck",
          "PluginRuntimeBuilder",
        ].sort(),
      );
      const management = names.find(([id]) => id.startsWith("HandlersManagement"))![1];
      const fn = await lambda.send(new GetFunctionCommand({ FunctionName: management }));
      expect(fn.Configuration).toMatchObject({
        State: "Active",
        Runtime: "nodejs22.x",
        MemorySize: 1024,
        Timeout: 29,
        Handler: "index.handler",
      });
      expect(fn.Configuration?.Environment?.Variables).toMatchObject({
        STORE_BACKEND: "aws",
        METADATA_TABLE: outputs.tableName,
        PACKAGE_BUCKET: outputs.bucketName,
      });
    } finally {
      lambda.destroy();
    }
  });

  it("runs the upgrade check as the stack's EventBridge rule does: a Scheduled Event through Lambda's asynchronous invoke", async () => {
    expect(ratePeriodMs("rate(15 minutes)")).toBe(15 * 60_000);
    const name = Object.entries(outputs.functions).find(([id]) => id.startsWith("HandlersUpgradeCheck"))![1];
    const lambda = new LambdaClient({
      endpoint: outputs.lambdaEndpoint,
      region: "us-east-1",
      credentials: { accessKeyId: "test", secretAccessKey: "test" },
    });
    try {
      const event = scheduledEvent("upgrade-schedule", new Date());
      const queued = await lambda.send(
        new InvokeCommand({
          FunctionName: name,
          InvocationType: "Event",
          Payload: new TextEncoder().encode(JSON.stringify(event)),
        }),
      );
      expect(queued.StatusCode).toBe(202);
      let report: EnvironmentReport | undefined;
      for (const deadline = Date.now() + 60_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 250))) {
        const reports = (await (await fetch(outputs.environmentsUrl)).json()) as EnvironmentReport[];
        report = reports.find((r) => r.functionName === name && r.state === "idle" && r.invocations === 1);
        if (report) break;
      }
      expect(report, log.slice(-5000)).toBeDefined();
      expect(log).not.toMatch(/asynchronous invocation of upgrade-check failed/);
    } finally {
      lambda.destroy();
    }
  }, 90_000);
});
