#!/usr/bin/env node
/**
 * Cold-init benchmark for the Lambda bundles: for each `dist/functions/<name>/index.mjs`, spawn a
 * fresh `node` that imports it and reports how long the import took (module load, parse, and the
 * handler's top-level initialisation). Median of 5 runs per bundle.
 *
 * Usage: node bench/cold-init.mjs [--runs N] [--bundles-dir <dir>] [--out <file>]
 * Run `node scripts/bundle.mjs` first. Writes bench/results/cold-init.json and prints a table.
 *
 * This measures the code's share of a Lambda cold start on this machine, not the Lambda service's
 * share (sandbox creation, code download); absolute numbers differ from Lambda's Init Duration.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Stand-ins for what the Lambda runtime provides, so handlers import exactly as they would there. */
const LAMBDA_ENV = {
  AWS_REGION: "us-east-1",
  AWS_DEFAULT_REGION: "us-east-1",
  AWS_ACCESS_KEY_ID: "AKIDBENCHMARK",
  AWS_SECRET_ACCESS_KEY: "benchmark",
  AWS_SESSION_TOKEN: "benchmark",
  AWS_LAMBDA_FUNCTION_NAME: "cold-init-bench",
  AWS_LAMBDA_FUNCTION_MEMORY_SIZE: "512",
  // Nothing listens here: a handler that calls AWS during init fails fast instead of reaching out.
  AWS_ENDPOINT_URL: "http://127.0.0.1:9",
  STORE_BACKEND: "aws",
  METADATA_TABLE: "bench-metadata",
  PACKAGE_BUCKET: "bench-packages",
  DAEMON_KEY_SECRET_ARN: "arn:aws:secretsmanager:us-east-1:000000000000:secret:bench-daemon-key",
  DIFY_INNER_API_URL: "http://127.0.0.1:9",
  DIFY_INNER_API_KEY_SECRET_ARN: "arn:aws:secretsmanager:us-east-1:000000000000:secret:bench-inner-key",
  PLUGIN_FUNCTION_PREFIX: "bench-plugin-",
  PLUGIN_ROLE_ARN: "arn:aws:iam::000000000000:role/bench-plugin",
  PLUGIN_LAYER_ARN: "arn:aws:lambda:us-east-1:000000000000:layer:bench:1",
  PLUGIN_BUILDER_FUNCTION: "bench-plugin-builder",
  INSTALL_WORKER_FUNCTION: "bench-install-worker",
  DAEMON_PUBLIC_URL: "http://127.0.0.1:9/prod",
  MARKETPLACE_API_URL: "http://127.0.0.1:9",
  FORCE_VERIFYING_SIGNATURE: "true",
  MAX_PLUGIN_PACKAGE_SIZE: "52428800",
  PLUGIN_MAX_EXECUTION_TIMEOUT: "600",
  PLUGIN_ARCH: "arm64",
  NODE_NO_WARNINGS: "1",
};

const PROBE = `
globalThis.awslambda = {
  streamifyResponse: (fn) => fn,
  HttpResponseStream: { from: (stream) => stream },
};
const started = performance.now();
await import(process.argv[1]);
process.stdout.write(JSON.stringify({ importMs: performance.now() - started }));
`;

function parseArgs(argv) {
  const args = {
    runs: 5,
    bundlesDir: join(repoRoot, "dist", "functions"),
    out: join(repoRoot, "bench", "results", "cold-init.json"),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--runs") args.runs = Number(argv[++i]);
    else if (a === "--bundles-dir") args.bundlesDir = resolve(argv[++i]);
    else if (a === "--out") args.out = resolve(argv[++i]);
    else throw new Error(`cold-init: unknown argument ${a}`);
  }
  if (!Number.isInteger(args.runs) || args.runs < 1) throw new Error("cold-init: --runs must be a positive integer");
  return args;
}

/** One fresh process per sample, so nothing is warm in the module cache. */
function importOnce(bundle) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ["--input-type=module", "-e", PROBE, pathToFileURL(bundle).href], {
      env: { PATH: process.env.PATH ?? "", ...LAMBDA_ENV },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`import of ${bundle} failed (exit ${code}):\n${stderr.trim()}`));
      try {
        resolvePromise(JSON.parse(stdout).importMs);
      } catch {
        reject(new Error(`import of ${bundle} printed no timing:\n${stdout}\n${stderr}`));
      }
    });
  });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};
const round = (n) => Math.round(n * 10) / 10;

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (!existsSync(args.bundlesDir))
    throw new Error(`cold-init: ${args.bundlesDir} not found; run node scripts/bundle.mjs first`);
  const names = readdirSync(args.bundlesDir)
    .filter((n) => existsSync(join(args.bundlesDir, n, "index.mjs")))
    .sort();
  if (names.length === 0) throw new Error(`cold-init: no bundles in ${args.bundlesDir}`);

  // Sizes as the bundler measured them (code loaded at init, and everything deployed).
  const sizesFile = join(args.bundlesDir, "sizes.json");
  const sizes = existsSync(sizesFile) ? JSON.parse(readFileSync(sizesFile, "utf8")).functions : {};

  const functions = {};
  for (const name of names) {
    const bundle = join(args.bundlesDir, name, "index.mjs");
    const samples = [];
    // Sequential on purpose: parallel spawns would compete for the (few) cores and skew timings.
    for (let i = 0; i < args.runs; i++) samples.push(await importOnce(bundle));
    functions[name] = {
      initBytes: sizes[name]?.initBytes ?? statSync(bundle).size,
      totalBytes: sizes[name]?.bytes ?? statSync(bundle).size,
      importMs: { median: round(median(samples)), min: round(Math.min(...samples)), max: round(Math.max(...samples)) },
      samplesMs: samples.map(round),
    };
  }

  const result = {
    measuredAt: new Date().toISOString(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpu: cpus()[0]?.model ?? "unknown",
    cpuCount: cpus().length,
    runsPerBundle: args.runs,
    functions,
  };
  mkdirSync(dirname(args.out), { recursive: true });
  writeFileSync(args.out, `${JSON.stringify(result, null, 2)}\n`);

  const rows = Object.entries(functions).map(([n, f]) => [
    n,
    `${(f.initBytes / 1024).toFixed(1)} KB`,
    `${f.importMs.median.toFixed(1)} ms`,
    `${f.importMs.min.toFixed(1)}–${f.importMs.max.toFixed(1)} ms`,
  ]);
  const header = ["function", "code at init", `import, median of ${args.runs}`, "range"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
  console.log([line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n"));
  console.log(
    `\n${result.node} on ${result.platform}, ${result.cpuCount} × ${result.cpu}; written to ${relative(process.cwd(), args.out)}`,
  );
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
