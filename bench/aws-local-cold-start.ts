/**
 * Cold starts of a plugin function in the AWS composition on this machine (`npm run
 * start:aws-local`): the echo-tool fixture uploaded and installed through API Gateway (code zip
 * from the real plugin builder), then N cold starts, each forced as on AWS by changing the
 * function's configuration (UpdateFunctionConfiguration: the next invocation gets a new
 * environment). Per cold start, from the execution environment's own measurements:
 * runtime start → init done (first /next) → plugin ready (the bootstrap's first heartbeat) →
 * first response chunk; and from the client: the dispatch call's first envelope, cold and warm.
 * Side by side with the local subprocess runtime's spawn-to-ready (bench/plugin-start.ts).
 *
 *   npx tsx bench/aws-local-cold-start.ts [--runs 8]
 *   npx tsx bench/aws-local-cold-start.ts --package regex.difypkg --plugin-id langgenius/regex --provider regex \
 *     --tool regex_extract --parameters '{"content":"order 123 shipped with 456","expression":"\\d+"}' \
 *     --expect "['123', '456']" --out aws-local-cold-start-regex.json
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import {
  GetFunctionConfigurationCommand,
  LambdaClient,
  UpdateFunctionConfigurationCommand,
} from "@aws-sdk/client-lambda";
import { Command } from "commander";
import type { CompositionOutputs } from "../src/aws-local/aws-composition.js";
import type { EnvironmentReport } from "../src/aws-local/function-runner.js";
import { packFixture } from "../test/support/fixture-packages.js";
import { repoRoot, resultsDir } from "./lib/paths.js";
import { percentiles } from "./lib/stats.js";

const options = new Command()
  .option("--runs <n>", "cold starts to time", "8")
  .option(
    "--package <file>",
    "a .difypkg to measure instead of the echo-tool fixture (e.g. an official plugin packed with upstream's packager)",
  )
  .option("--plugin-id <id>", "its plugin id (author/name)", "fixtures/echo-tool")
  .option("--provider <name>", "the tool provider to call", "echo")
  .option("--tool <name>", "the tool to call", "echo")
  .option("--parameters <json>", "the tool's parameters; {text} is replaced by a per-call marker", '{"text":"{text}"}')
  .option("--expect <text>", "what the answer must contain; {text} is the per-call marker", "{text}")
  .option("--out <name>", "results file under bench/results", "aws-local-cold-start.json")
  .parse()
  .opts<{
    runs: string;
    package?: string;
    pluginId: string;
    provider: string;
    tool: string;
    parameters: string;
    expect: string;
    out: string;
  }>();
const runs = Number(options.runs);
const KEY = `bench-${crypto.randomUUID()}`;
const TENANT = crypto.randomUUID();

const work = mkdtempSync(join(tmpdir(), "aws-local-bench-"));
const outputsFile = join(work, "outputs.json");
const command = spawn(
  "bash",
  [
    join(repoRoot, "scripts", "start-aws-local.sh"),
    "--port",
    "0",
    "--host",
    "127.0.0.1",
    "--outputs",
    outputsFile,
    "--daemon-key",
    KEY,
    "--function-logs",
    "none",
    "-c",
    "forceVerifyingSignature=false",
  ],
  { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"], detached: true },
);
let log = "";
command.stdout.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-50_000)));
command.stderr.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-50_000)));

async function stopCommand(): Promise<void> {
  if (command.exitCode !== null) return;
  const exited = new Promise((resolve) => command.once("exit", resolve));
  command.kill("SIGTERM");
  const timer = setTimeout(() => process.kill(-command.pid!, "SIGKILL"), 20_000);
  await exited;
  clearTimeout(timer);
}

async function ready(): Promise<CompositionOutputs> {
  for (const deadline = Date.now() + 300_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 250))) {
    if (command.exitCode !== null) throw new Error(`start:aws-local exited:\n${log}`);
    if (existsSync(outputsFile)) return JSON.parse(readFileSync(outputsFile, "utf8")) as CompositionOutputs;
  }
  throw new Error(`start:aws-local was not ready:\n${log}`);
}

interface Envelope {
  code: number;
  message: string;
  data: any;
}

async function management(url: string, path: string, init: RequestInit = {}): Promise<Envelope> {
  const res = await fetch(`${url}/plugin/${TENANT}/management${path}`, {
    ...init,
    headers: { "X-Api-Key": KEY, ...(init.headers as Record<string, string>) },
  });
  return (await res.json()) as Envelope;
}

/** A tool call through API Gateway; milliseconds to the first envelope and to the end. */
async function call(url: string, text: string): Promise<{ firstMs: number; totalMs: number }> {
  const parameters = JSON.parse(options.parameters.replaceAll("{text}", text)) as Record<string, unknown>;
  const expected = options.expect.replaceAll("{text}", text);
  const started = performance.now();
  const res = await fetch(`${url}/plugin/${TENANT}/dispatch/tool/invoke`, {
    method: "POST",
    headers: { "X-Api-Key": KEY, "Content-Type": "application/json", "X-Plugin-ID": options.pluginId },
    body: JSON.stringify({
      user_id: "bench",
      data: {
        provider: options.provider,
        tool: options.tool,
        credentials: {},
        credential_type: "api-key",
        tool_parameters: parameters,
      },
    }),
  });
  let firstMs: number | undefined;
  let body = "";
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    firstMs ??= performance.now() - started;
    body += Buffer.from(chunk).toString("utf8");
  }
  if (!body.includes(expected))
    throw new Error(`the answer lacks ${expected}: HTTP ${res.status} ${body.slice(0, 500)}`);
  return { firstMs: firstMs ?? Number.NaN, totalMs: performance.now() - started };
}

try {
  const outputs = await ready();
  const url = outputs.PluginDaemonUrl;
  const form = new FormData();
  const pkg = options.package ? readFileSync(options.package) : await packFixture("echo-tool");
  form.set("dify_pkg", new Blob([pkg]), "plugin.difypkg");
  form.set("verify_signature", "false");
  const uploaded = await management(url, "/install/upload/package", { method: "POST", body: form });
  if (uploaded.code !== 0) throw new Error(`upload refused: ${uploaded.message}`);
  const installStarted = Date.now();
  const started = await management(url, "/install/identifiers", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      plugin_unique_identifiers: [uploaded.data.unique_identifier],
      source: "package",
      metas: [{}],
    }),
  });
  for (;;) {
    const task = await management(url, `/install/tasks/${started.data.task_id}`);
    if (task.data.status === "success") break;
    if (task.data.status === "failed") throw new Error(`install failed: ${JSON.stringify(task.data)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  const installMs = Date.now() - installStarted;

  const lambda = new LambdaClient({
    endpoint: outputs.lambdaEndpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
  });
  const stackFunctions = new Set(Object.values(outputs.functions));
  const environments = async () =>
    ((await (await fetch(outputs.environmentsUrl)).json()) as EnvironmentReport[]).filter(
      (r) => !stackFunctions.has(r.functionName),
    );

  const loadBefore = loadavg()[0]!;
  const cold: Array<{
    client: { firstMs: number; totalMs: number };
    warm: { firstMs: number; totalMs: number };
    report: EnvironmentReport;
  }> = [];
  for (let i = 0; i < runs; i++) {
    const known = new Set((await environments()).map((r) => r.environment));
    if (i > 0) {
      // What forces a cold start on AWS too: a configuration change retires the warm environments.
      const name = (await environments())[0]!.functionName;
      await lambda.send(new UpdateFunctionConfigurationCommand({ FunctionName: name, Description: `cold start ${i}` }));
      while (
        (await lambda.send(new GetFunctionConfigurationCommand({ FunctionName: name }))).LastUpdateStatus !==
        "Successful"
      )
        await new Promise((r) => setTimeout(r, 100));
    }
    const client = await call(url, `cold-${i}`);
    const warm = await call(url, `warm-${i}`);
    const report = (await environments()).find((r) => !known.has(r.environment));
    if (!report) throw new Error("no new environment: the call was not a cold start");
    cold.push({ client, warm, report });
  }
  lambda.destroy();

  const reference = join(resultsDir, "plugin-start.json");
  const local = existsSync(reference)
    ? (JSON.parse(readFileSync(reference, "utf8")) as { spawn_to_ready_ms?: unknown; at?: string })
    : undefined;
  const of = (pick: (c: (typeof cold)[number]) => number | undefined) =>
    percentiles(cold.map(pick).filter((n): n is number => n !== undefined));
  const result = {
    scenario: `plugin function cold start in npm run start:aws-local, ${options.package ? `${options.pluginId} (${options.tool})` : "echo-tool fixture"} (code zip from the real plugin builder, the layer's bootstrap, Runtime API in streaming mode)`,
    runs,
    install_ms: installMs,
    memory_size_mib: cold[0]?.report.memorySizeMiB,
    from_runtime_start_ms: {
      init_done: of((c) => c.report.initMs),
      plugin_ready: of((c) => c.report.marks.pluginReady),
      first_chunk: of((c) => c.report.firstChunkMs),
    },
    invocation_to_first_chunk_ms: of((c) => c.report.firstInvocationToChunkMs),
    client_first_envelope_ms: { cold: of((c) => c.client.firstMs), warm: of((c) => c.warm.firstMs) },
    client_total_ms: { cold: of((c) => c.client.totalMs), warm: of((c) => c.warm.totalMs) },
    max_memory_mib: of((c) => c.report.maxMemoryMiB),
    local_subprocess_runtime: local
      ? {
          source: "bench/results/plugin-start.json (bench/plugin-start.ts: spawn to first heartbeat)",
          spawn_to_ready_ms: local.spawn_to_ready_ms,
          at: local.at,
        }
      : "run bench/plugin-start.ts for the local runtime's figures",
    load_average_1m: { before: loadBefore, after: loadavg()[0]! },
    cores: cpus().length,
    at: new Date().toISOString(),
  };
  console.log(JSON.stringify(result, null, 2));
  writeFileSync(join(resultsDir, options.out), `${JSON.stringify(result, null, 2)}\n`);
} finally {
  await stopCommand();
  rmSync(work, { recursive: true, force: true });
}
