/**
 * `npm run start:aws-local`: the daemon as it runs on AWS, on this machine, without an AWS
 * account (aws-composition.ts). Prints the daemon URL and key for Dify, what differs from AWS,
 * every function's log lines and each cold start; stops everything it started on SIGINT/SIGTERM.
 *
 *   npm run start:aws-local -- [--port 5002] [-c forceVerifyingSignature=false] [-c difyInnerApiUrl=http://…]
 */
import { mkdtempSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { Command, InvalidArgumentError } from "commander";
import { type CompositionOutputs, startAwsComposition } from "./aws-composition.js";
import type { RunnerEvent } from "./function-runner.js";
import { handlerBundles } from "./handler-bundles.js";

export const DIFFERENCES_FROM_AWS = [
  "IAM is not enforced: the stack's roles and policies are read, not created; a missing permission shows up only on AWS.",
  "S3, DynamoDB and Secrets Manager are moto, in memory: everything is gone when this command stops; DynamoDB TTL does not sweep.",
  "Functions run as processes on this machine: memory sizes are enforced on resident memory, timeouts exactly, but CPU does not scale with memory and there is no 10 s init limit; cold starts are this machine's.",
  "Handlers run on this machine's Node.js instead of nodejs22.x on arm64; plugin functions and the builder are built and run for this machine's architecture; the builder uses this machine's uv and keeps its /tmp (package cache) across runs; functions get this machine's proxy and CA settings.",
  "Enforced as on AWS: API Gateway's 10 MB request payload, 29 s buffered integration timeout, 5-minute idle cut of a stream, stage throttling; Lambda's 6 MB request and buffered response, 1 MB asynchronous payload, concurrency (reserved, else 10 environments a function).",
  "Not emulated: streamed-response size and bandwidth limits, account concurrency quotas, CloudWatch metrics/alarms/dashboards (logs are printed here), X-Ray, VPC placement, TLS (plain HTTP).",
];

interface Options {
  host: string;
  port: number;
  context: Record<string, string>;
  daemonKey?: string;
  innerApiKey?: string;
  outputs?: string;
  functionLogs: "all" | "none";
  streamIdleSeconds?: number;
}

function parseArgs(argv: string[]): Options {
  const port = (value: string) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0 || n > 65_535) throw new InvalidArgumentError("expected a port number");
    return n;
  };
  const context = (value: string, previous: Record<string, string>) => {
    const at = value.indexOf("=");
    if (at <= 0) throw new InvalidArgumentError("expected key=value");
    return { ...previous, [value.slice(0, at)]: value.slice(at + 1) };
  };
  const seconds = (value: string) => {
    const n = Number(value);
    if (!(n > 0)) throw new InvalidArgumentError("expected a positive number of seconds");
    return n;
  };
  return new Command("start:aws-local")
    .description(
      "Runs the daemon's AWS stack on this machine: API Gateway, the Lambda handlers, plugin functions, S3, DynamoDB, Secrets Manager, EventBridge.",
    )
    .option("--host <host>", "where the API listens", process.env.SERVER_HOST ?? "0.0.0.0")
    .option("--port <port>", "the API's port (0: any free one)", port, Number(process.env.SERVER_PORT ?? 5002))
    .option(
      "-c, --context <key=value>",
      "CDK context for the stack, as with cdk deploy (repeatable)",
      context,
      {} as Record<string, string>,
    )
    .option(
      "--daemon-key <key>",
      "use this daemon key instead of a generated one (Dify: PLUGIN_DAEMON_KEY)",
      process.env.AWS_LOCAL_DAEMON_KEY,
    )
    .option(
      "--inner-api-key <key>",
      "use this inner-API key instead of a generated one (Dify: INNER_API_KEY_FOR_PLUGIN)",
      process.env.AWS_LOCAL_INNER_API_KEY,
    )
    .option("--outputs <file>", "also write the outputs (URL, keys, endpoints) to this JSON file once ready")
    .option(
      "--function-logs <all|none>",
      "print the functions' log lines",
      (v: string) => {
        if (v !== "all" && v !== "none") throw new InvalidArgumentError("expected all or none");
        return v;
      },
      "all" as const,
    )
    .option("--stream-idle-seconds <seconds>", "cut a silent stream after this long (API Gateway: 300)", seconds)
    .parse(argv, { from: "user" })
    .opts<Options>();
}

/** "HandlersManagement6BB1B239" → "management"; plugin functions keep their names. */
function labels(outputs: CompositionOutputs): Map<string, string> {
  const map = new Map<string, string>();
  for (const [logicalId, name] of Object.entries(outputs.functions)) {
    const short = logicalId
      .replace(/^Handlers/, "")
      .replace(/[0-9A-F]{8}$/, "")
      .replace(/([a-z])([A-Z])/g, "$1-$2")
      .toLowerCase();
    map.set(name, short);
  }
  return map;
}

function printEvent(event: RunnerEvent, names: Map<string, string>, logs: boolean): void {
  const label = (name: string) => names.get(name) ?? name;
  if (event.type === "log") {
    if (logs && event.line.trim())
      process.stdout.write(`[${label(event.functionName)}#${event.environment}] ${event.line}\n`);
  } else if (event.type === "cold-start") {
    const r = event.report;
    const ready = r.marks.pluginReady !== undefined ? `, plugin ready ${r.marks.pluginReady} ms` : "";
    process.stdout.write(
      `cold start ${label(r.functionName)} #${r.environment} (${r.memorySizeMiB} MB): runtime init ${r.initMs ?? "?"} ms${ready}, first chunk ${r.firstChunkMs ?? "?"} ms after start (${r.firstInvocationToChunkMs ?? "?"} ms after the invocation)\n`,
    );
  } else {
    process.stdout.write(`environment ${label(event.functionName)} #${event.environment} ended: ${event.reason}\n`);
  }
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const uv = process.env.UV_PATH;
  if (!uv) throw new Error("run through `npm run start:aws-local` (scripts/start-aws-local.sh finds uv and Python)");
  const cacheDir = join(
    process.env.DIFY_DAEMON_CACHE ?? join(homedir(), ".cache", "dify-plugin-daemon-aws"),
    "aws-local",
  );
  let names = new Map<string, string>();
  // A signal during the start stops what has started once it has.
  let stopRequested: string | undefined;
  const early = (signal: string) => () => void (stopRequested = signal);
  process.once("SIGINT", early("SIGINT"));
  process.once("SIGTERM", early("SIGTERM"));
  const bundleDir = await handlerBundles(cacheDir, (line) => console.log(line));
  console.log(
    "starting the AWS composition: moto (S3, DynamoDB, Secrets Manager), the Lambda service, the stack's functions, API Gateway …",
  );
  const running = await startAwsComposition({
    host: o.host,
    port: o.port,
    context: o.context,
    bundleDir,
    stateDir: mkdtempSync(join(tmpdir(), "dify-aws-local-")),
    cacheDir,
    uv,
    ...(process.env.PYTHON_INTERPRETER_PATH && { python: process.env.PYTHON_INTERPRETER_PATH }),
    ...(o.daemonKey && { daemonKey: o.daemonKey }),
    ...(o.innerApiKey && { innerApiKey: o.innerApiKey }),
    ...(o.streamIdleSeconds !== undefined && { streamIdleMs: o.streamIdleSeconds * 1000 }),
    onRunnerEvent: (event) => printEvent(event, names, o.functionLogs === "all"),
    onAccess: (e) => {
      if (o.functionLogs === "all")
        process.stdout.write(
          `[api-gateway] ${e.httpMethod} ${e.path} ${e.status} ${e.responseLatency} ms${e.integrationError ? ` (${e.integrationError})` : ""}\n`,
        );
    },
    onAsyncFailure: (fn, error) =>
      process.stdout.write(
        `asynchronous invocation of ${names.get(fn.name) ?? fn.name} failed: ${error.errorType}: ${error.errorMessage}\n`,
      ),
  });
  const { outputs } = running;
  names = labels(outputs);
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: stopping every function, the API and moto`);
    await running.stop();
    process.exit(0);
  };
  process.removeAllListeners("SIGINT").removeAllListeners("SIGTERM");
  process.once("SIGINT", () => void shutdown("SIGINT"));
  process.once("SIGTERM", () => void shutdown("SIGTERM"));
  if (stopRequested) return shutdown(stopRequested);

  console.log(
    [
      "",
      `stack ${outputs.stackName} deployed on this machine (plugin functions for ${outputs.pluginArch})`,
      `  PluginDaemonUrl        ${outputs.PluginDaemonUrl}`,
      `  daemon key             ${outputs.daemonKey}   (Dify: PLUGIN_DAEMON_KEY; secret ${outputs.daemonKeySecretArn})`,
      `  inner-API key          ${outputs.innerApiKey}   (Dify: INNER_API_KEY_FOR_PLUGIN)`,
      `  ENDPOINT_URL_TEMPLATE  ${outputs.PluginDaemonUrl}/e/{hook_id}`,
      `  table ${outputs.tableName}, bucket ${outputs.bucketName}`,
      `  AWS tools: AWS_ENDPOINT_URL=${outputs.awsEndpoint} AWS_ENDPOINT_URL_LAMBDA=${outputs.lambdaEndpoint} AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1`,
      `  execution environments and cold starts: ${outputs.environmentsUrl}`,
      ...running.skippedSchedules.map((s) => `  schedule not emulated: ${s}`),
      "",
      "What differs from AWS:",
      ...DIFFERENCES_FROM_AWS.map((d) => `  - ${d}`),
      "",
      `smoke test: npm run smoke -- --url ${outputs.PluginDaemonUrl} --key ${outputs.daemonKey}`,
      "ready",
    ].join("\n"),
  );
  if (o.outputs) await writeFile(o.outputs, JSON.stringify(outputs, null, 2));
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exit(1);
});
