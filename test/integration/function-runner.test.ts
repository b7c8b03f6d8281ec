/**
 * The local function runner behind the Lambda service emulator (src/aws-local), driven through
 * the real LambdaClient: Python functions on the managed runtime's client (a stand-in for
 * Lambda's), each invocation in an execution environment that is kept warm, more environments
 * for concurrent invocations, the function's Timeout and MemorySize enforced as Lambda does.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InvokeCommand, LambdaClient } from "@aws-sdk/client-lambda";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type EnvironmentReport, LocalFunctionRunner } from "../../src/aws-local/function-runner.js";
import { LambdaService } from "../../src/aws-local/lambda-service.js";
import { PYTHON_RUNTIME_CLIENT } from "../../src/aws-local/managed-runtimes.js";

const HANDLER = `
import os, time
hog = []
def handler(event, context):
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("allocate_mb"):
        for _ in range(event["allocate_mb"]):
            hog.append(b"x" * (1024 * 1024))
            time.sleep(0.005)
    return {"pid": os.getpid(), "remaining_ms": context.get_remaining_time_in_millis(), "memory": context.memory_limit_in_mb}
`;

let work: string;
let service: LambdaService;
let runner: LocalFunctionRunner;
let lambda: LambdaClient;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "function-runner-"));
  const code = join(work, "code");
  mkdirSync(code);
  writeFileSync(join(code, "app.py"), HANDLER);
  runner = new LocalFunctionRunner({
    stateDir: join(work, "state"),
    // Stdlib only: the test's interpreter stands in for the managed runtime's.
    runtimes: { commandLine: async () => [inject("pythonPath"), PYTHON_RUNTIME_CLIENT] },
    layers: new Map(),
    fetchCode: async () => {
      throw new Error("no S3 here");
    },
    environment: () => ({}),
  });
  service = await LambdaService.start({ runner, recordCalls: false });
  for (const [name, settings] of [
    ["quick", { Timeout: 1, MemorySize: 128 }],
    ["roomy", { Timeout: 30, MemorySize: 1024 }],
  ] as const) {
    service.register(
      {
        FunctionName: name,
        Runtime: "python3.12",
        Handler: "app.handler",
        Role: "arn:aws:iam::123456789012:role/r",
        ...settings,
      },
      { directory: code },
    );
  }
  lambda = new LambdaClient({
    endpoint: service.endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "t", secretAccessKey: "t" },
    maxAttempts: 1,
  });
});

afterAll(async () => {
  lambda?.destroy();
  await runner?.stop();
  await service?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

async function invoke(name: string, event: unknown) {
  const out = await lambda.send(
    new InvokeCommand({ FunctionName: name, Payload: new TextEncoder().encode(JSON.stringify(event)) }),
  );
  return {
    error: out.FunctionError,
    payload: JSON.parse(new TextDecoder().decode(out.Payload)) as Record<string, unknown>,
  };
}

const environmentsOf = (name: string) =>
  (runner.describe() as EnvironmentReport[]).filter((r) => r.functionName === name);

describe("local function runner (Lambda service emulated, real LambdaClient)", () => {
  it("keeps one warm environment for consecutive invocations, with the deadline and memory size in the context", async () => {
    const first = await invoke("roomy", {});
    const second = await invoke("roomy", {});
    expect(first.error).toBeUndefined();
    expect(second.payload.pid).toBe(first.payload.pid);
    expect(first.payload.memory).toBe("1024");
    expect(Number(first.payload.remaining_ms)).toBeGreaterThan(25_000);
    const [env] = environmentsOf("roomy");
    expect(env).toMatchObject({ invocations: 2, state: "idle" });
    expect(env!.initMs).toBeGreaterThan(0);
  });

  it("starts another environment for an invocation that arrives while the warm one is busy", async () => {
    const both = await Promise.all([invoke("roomy", { sleep: 1 }), invoke("roomy", { sleep: 1 })]);
    expect(new Set(both.map((b) => b.payload.pid)).size).toBe(2);
    expect(environmentsOf("roomy").filter((r) => r.state !== "stopped")).toHaveLength(2);
  });

  it("ends an invocation at the function's timeout with Sandbox.Timedout and discards its environment", async () => {
    const warm = await invoke("quick", {});
    const late = await invoke("quick", { sleep: 3 });
    expect(late.error).toBe("Unhandled");
    expect(late.payload).toMatchObject({
      errorType: "Sandbox.Timedout",
      errorMessage: expect.stringMatching(/Task timed out after 1\.00 seconds/),
    });
    const next = await invoke("quick", {});
    expect(next.payload.pid).not.toBe(warm.payload.pid);
  });

  it("kills an environment that outgrows the function's memory size, as Runtime.OutOfMemory", async () => {
    const out = await invoke("roomy", { allocate_mb: 1200 });
    expect(out.error).toBe("Unhandled");
    expect(out.payload).toMatchObject({ errorType: "Runtime.OutOfMemory" });
  }, 30_000);
});
