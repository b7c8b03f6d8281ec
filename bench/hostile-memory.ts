/**
 * The local daemon's memory under hostile input, measured on the bundled daemon (what `npm start`
 * runs) as a child process, so its resident set is the daemon's own:
 *  - 4 concurrent 100 MB uploads without the key (with and without Content-Length);
 *  - 4 concurrent authenticated 100 MB bodies sent chunked, on a JSON route and on the package
 *    upload route (which must cut them at their caps, not buffer them);
 *  - 50 MB plugin answers (one stdout line each), at the default line cap and with the cap
 *    raised above them so they are delivered;
 *  - an endless line before the handshake on the remote-debugging port.
 * For each: the daemon's RSS before, at its peak, 3 s and 10 s after, what the callers got, and the
 * latency of /health/check polled every 50 ms meanwhile (what everyone else sees).
 *
 *   npx tsx bench/hostile-memory.ts [--bundle <main.mjs>] [--label <name>] [--answer-mb 50] [--rounds 4]
 *
 * --bundle measures another build of the daemon (e.g. an older commit's scripts/build-local.mjs
 * output); by default the current tree is bundled. Writes bench/results/hostile-memory[-label].json.
 */

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { connect } from "node:net";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { packFixture } from "../test/support/fixture-packages.js";
import { localDaemonCommand } from "./lib/our-daemon.js";
import { buildDir, resultsDir } from "./lib/paths.js";
import { type DaemonEndpoint, installIdentifier, TENANT, uploadPackage, waitForTask } from "./lib/plugin-api.js";
import { MiB, rssBytes } from "./lib/proc.js";
import { cleanupAll, freePort, httpOk, type Managed, startProcess, waitUntil } from "./lib/processes.js";
import { percentiles, round } from "./lib/stats.js";
import { resolveToolchain } from "./lib/toolchain.js";

const KEY = "bench-hostile-key";
const PLUGIN_ID = "fixtures/misbehaving-tool";

function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const LABEL = option("label");
const ANSWER_MB = Number(option("answer-mb") ?? 50);
const ROUNDS = Number(option("rounds") ?? 4);

const started = Date.now();
const log = (line: string) =>
  process.stderr.write(`[hostile +${((Date.now() - started) / 1000).toFixed(0).padStart(3)}s] ${line}\n`);

// ---------------------------------------------------------------------------------------------
// The daemon

interface Daemon {
  endpoint: DaemonEndpoint;
  debugPort: number;
  process: Managed;
  dataDir: string;
}

async function startDaemon(
  nodeArgs: string[],
  env: Record<string, string>,
  python: string,
  uv: string,
  dataDir?: string,
): Promise<Daemon> {
  const port = await freePort();
  const debugPort = await freePort();
  const dir = dataDir ?? mkdtempSync(join(tmpdir(), "bench-hostile-"));
  mkdirSync(join(buildDir, "logs"), { recursive: true });
  const managed = startProcess("ours (bundle)", process.execPath, nodeArgs, {
    env: {
      ...process.env,
      SERVER_HOST: "127.0.0.1",
      SERVER_PORT: String(port),
      SERVER_KEY: KEY,
      DATA_DIR: dir,
      STORE_BACKEND: "local",
      FORCE_VERIFYING_SIGNATURE: "false",
      PYTHON_INTERPRETER_PATH: python,
      UV_PATH: uv,
      PLUGIN_REMOTE_INSTALLING_ENABLED: "true",
      PLUGIN_REMOTE_INSTALLING_HOST: "127.0.0.1",
      PLUGIN_REMOTE_INSTALLING_PORT: String(debugPort),
      AUTO_UPGRADE_ENABLED: "false",
      LOG_LEVEL: "warn",
      ...env,
    },
    logFile: join(buildDir, "logs", `hostile-${LABEL ?? "current"}.log`),
  });
  const baseUrl = `http://127.0.0.1:${port}`;
  let exited: string | undefined;
  void managed.exited.then((code) => (exited = `exited with ${code}: ${managed.logTail(1500)}`));
  await waitUntil(
    `daemon on ${baseUrl}`,
    () => httpOk(`${baseUrl}/health/check`),
    60_000,
    100,
    () => exited,
  );
  return { endpoint: { baseUrl, key: KEY, pluginId: PLUGIN_ID }, debugPort, process: managed, dataDir: dir };
}

const rssMiB = (d: Daemon) => round((rssBytes(d.process.pid) ?? 0) / MiB, 1);
const alive = (d: Daemon) => d.process.child.exitCode === null && d.process.child.signalCode === null;

// ---------------------------------------------------------------------------------------------
// Callers

interface Sent {
  status: number | string;
  code?: number | string;
  message?: string;
  sentMiB: number;
}

/** A body streamed from one reused 64 KiB chunk; stops sending once the answer arrives. */
function sendBody(
  d: Daemon,
  path: string,
  headers: Record<string, string>,
  totalBytes: number,
  contentLength: boolean,
): Promise<Sent> {
  const chunk = Buffer.alloc(64 * 1024, 0x20);
  return new Promise((resolve) => {
    let sent = 0;
    let answered = false;
    const h = { ...headers };
    if (contentLength) h["content-length"] = String(totalBytes);
    const req = request(`${d.endpoint.baseUrl}${path}`, { method: "POST", headers: h, agent: false }, (res) => {
      answered = true;
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("end", () => {
        let envelope: { code?: number | string; message?: string } = {};
        try {
          envelope = JSON.parse(text) as typeof envelope;
        } catch {
          // not JSON
        }
        let message = envelope.message;
        try {
          message = (JSON.parse(message ?? "") as { message?: string }).message ?? message;
        } catch {
          // a plain message
        }
        resolve({ status: res.statusCode ?? 0, code: envelope.code, message, sentMiB: round(sent / MiB, 1) });
        req.destroy();
      });
    });
    req.on("error", (err: NodeJS.ErrnoException) => {
      if (!answered) resolve({ status: err.code ?? err.message, sentMiB: round(sent / MiB, 1) });
    });
    const pump = async () => {
      while (!answered && !req.destroyed && sent < totalBytes) {
        const piece = chunk.subarray(0, Math.min(chunk.length, totalBytes - sent));
        sent += piece.length;
        if (!req.write(piece)) await new Promise<void>((r) => req.once("drain", () => r()));
      }
      if (!answered && !req.destroyed) req.end();
    };
    void pump().catch(() => undefined);
  });
}

/** One tool call whose answer is one `megabytes` MiB text message; the whole SSE body is read. */
async function hugeAnswer(d: Daemon, megabytes: number): Promise<Sent> {
  const res = await fetch(`${d.endpoint.baseUrl}/plugin/${TENANT}/dispatch/tool/invoke`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": KEY, "x-plugin-id": PLUGIN_ID },
    body: JSON.stringify({
      user_id: "bench",
      data: {
        provider: "misbehaving",
        tool: "huge_output",
        credentials: {},
        credential_type: "api-key",
        tool_parameters: { megabytes },
      },
    }),
  });
  const text = await res.text();
  const last =
    text
      .trim()
      .split("\n")
      .filter((l) => l.startsWith("data: "))
      .at(-1) ?? "";
  let code: number | string | undefined;
  let message: string | undefined;
  try {
    const envelope = JSON.parse(last.slice(6)) as {
      code: number;
      message: string;
      data?: { message?: { text?: string } };
    };
    code = envelope.code;
    message =
      envelope.code === 0
        ? `${round((envelope.data?.message?.text?.length ?? 0) / MiB, 1)} MiB of text`
        : innermost(envelope.message);
  } catch {
    message = `HTTP ${res.status}, ${text.length} bytes`;
  }
  return { status: res.status, code, message, sentMiB: 0 };
}

/** The plugin's own message inside a dispatch error (PluginInvokeError wraps it twice). */
function innermost(message: string): string {
  let current = message;
  for (let i = 0; i < 3; i++) {
    try {
      current = (JSON.parse(current) as { message: string }).message;
    } catch {
      break;
    }
  }
  return current;
}

/** An endless line (no newline) before the handshake; resolves with what the server said once it closed. */
function endlessLine(d: Daemon, bytes: number): Promise<Sent> {
  return new Promise((resolve) => {
    const socket = connect(d.debugPort, "127.0.0.1");
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    let said = "";
    let sent = 0;
    let closed = false;
    socket.on("data", (c) => (said += c.toString("utf8")));
    socket.on("error", () => undefined);
    socket.on("close", () => {
      closed = true;
      resolve({ status: "closed", message: said.trim() || "(nothing)", sentMiB: round(sent / MiB, 1) });
    });
    const pump = () => {
      while (!closed && sent < bytes) {
        sent += chunk.length;
        if (!socket.write(chunk)) return void socket.once("drain", pump);
      }
      if (!closed) socket.end();
    };
    pump();
  });
}

// ---------------------------------------------------------------------------------------------
// Measuring

interface ScenarioResult {
  id: string;
  label: string;
  answers: string[];
  rssBeforeMiB: number;
  rssPeakMiB: number;
  rssAfterMiB: number;
  /** 10 s after the scenario ended (garbage collected and given back, or not). */
  rssSettledMiB: number;
  wallMs: number;
  healthMs: { p50: number; p99: number; max: number; failures: number };
  daemonAlive: boolean;
}

async function measure(d: Daemon, id: string, label: string, work: () => Promise<Sent[]>): Promise<ScenarioResult> {
  await new Promise((r) => setTimeout(r, 1000));
  const before = rssMiB(d);
  let peak = before;
  const rssTimer = setInterval(() => (peak = Math.max(peak, rssMiB(d))), 20);
  const health: number[] = [];
  let healthFailures = 0;
  let polling = true;
  const poll = (async () => {
    while (polling) {
      const t0 = performance.now();
      try {
        const res = await fetch(`${d.endpoint.baseUrl}/health/check`, { signal: AbortSignal.timeout(10_000) });
        await res.arrayBuffer();
        if (!res.ok) healthFailures++;
      } catch {
        healthFailures++;
      }
      health.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const t0 = performance.now();
  let answers: Sent[];
  try {
    answers = await work();
  } catch (err) {
    answers = [{ status: `failed: ${err instanceof Error ? err.message : String(err)}`, sentMiB: 0 }];
  }
  const wallMs = round(performance.now() - t0, 0);
  await new Promise((r) => setTimeout(r, 3000));
  polling = false;
  await poll;
  clearInterval(rssTimer);
  const after = rssMiB(d);
  await new Promise((r) => setTimeout(r, 7000));
  const p = percentiles(health);
  const result: ScenarioResult = {
    id,
    label,
    answers: summarise(answers),
    rssBeforeMiB: before,
    rssPeakMiB: peak,
    rssAfterMiB: after,
    rssSettledMiB: rssMiB(d),
    wallMs,
    healthMs: { p50: p.p50, p99: p.p99, max: p.max, failures: healthFailures },
    daemonAlive: alive(d),
  };
  log(
    `${label}: RSS ${result.rssBeforeMiB} → peak ${result.rssPeakMiB} → ${result.rssAfterMiB} → ${result.rssSettledMiB} MiB; ${result.answers.join("; ")}`,
  );
  return result;
}

/** Identical answers folded into one line with a count. */
function summarise(answers: Sent[]): string[] {
  const counts = new Map<string, number>();
  for (const a of answers) {
    const text = `${a.status}${a.code !== undefined ? ` ${a.code}` : ""}${a.message ? ` "${a.message}"` : ""}`;
    counts.set(text, (counts.get(text) ?? 0) + 1);
  }
  return [...counts].map(([text, n]) => (n > 1 ? `${n}× ${text}` : text));
}

const parallel = (n: number, fn: (i: number) => Promise<Sent>) =>
  Promise.all(Array.from({ length: n }, (_, i) => fn(i)));
async function sequential(n: number, fn: () => Promise<Sent>): Promise<Sent[]> {
  const out: Sent[] = [];
  for (let i = 0; i < n; i++) out.push(await fn());
  return out;
}

// ---------------------------------------------------------------------------------------------
// Run

async function main() {
  const toolchain = await resolveToolchain(log);
  // The node options npm start runs with (scripts/build-local.mjs), or another build's bundle.
  const other = option("bundle");
  const nodeArgs = other ? ["--enable-source-maps", other] : localDaemonCommand();
  log(`daemon: node ${nodeArgs.join(" ")}`);
  const results: ScenarioResult[] = [];
  const upload = `/plugin/${TENANT}/management/install/upload/package`;
  const multipart = { "content-type": "multipart/form-data; boundary=bench" };

  let d = await startDaemon(nodeArgs, {}, toolchain.python, toolchain.uv);
  const dataDir = d.dataDir;
  try {
    const uid = await uploadPackage(d.endpoint, await packFixture("misbehaving-tool"));
    const { taskId, allInstalled } = await installIdentifier(d.endpoint, uid);
    if (!allInstalled) await waitForTask(d.endpoint, taskId, 300_000);
    await hugeAnswer(d, 0.001); // the plugin process is up
    log(`installed ${uid}; idle RSS ${rssMiB(d)} MiB`);

    results.push(
      await measure(d, "unauth-uploads", "4 × 100 MB uploads, no key (Content-Length)", () =>
        parallel(4, () => sendBody(d, upload, multipart, 100e6, true)),
      ),
    );
    results.push(
      await measure(d, "unauth-uploads-chunked", "4 × 100 MB uploads, no key (chunked)", () =>
        parallel(4, () => sendBody(d, upload, multipart, 100e6, false)),
      ),
    );
    results.push(
      await measure(d, "auth-json-chunked", "4 × 100 MB JSON bodies with the key (chunked)", () =>
        parallel(4, () =>
          sendBody(
            d,
            `/plugin/${TENANT}/management/install/identifiers`,
            { "content-type": "application/json", "x-api-key": KEY },
            100e6,
            false,
          ),
        ),
      ),
    );
    results.push(
      await measure(d, "auth-uploads-chunked", "4 × 100 MB uploads with the key (chunked)", () =>
        parallel(4, () => sendBody(d, upload, { ...multipart, "x-api-key": KEY }, 100e6, false)),
      ),
    );
    results.push(
      await measure(
        d,
        "plugin-answers-default-cap",
        `${ROUNDS} × ${ANSWER_MB} MB plugin answers (default line cap)`,
        () => sequential(ROUNDS, () => hugeAnswer(d, ANSWER_MB)),
      ),
    );
    results.push(
      await measure(d, "debug-endless-line", "endless pre-handshake line on the debugging port (200 MiB)", async () => [
        await endlessLine(d, 200 * MiB),
      ]),
    );
    await d.process.stop(10_000);

    // Same data directory, line cap above the answers: they are delivered, and what they cost shows.
    const raised = String((ANSWER_MB + 14) * MiB);
    d = await startDaemon(
      nodeArgs,
      { PLUGIN_RUNTIME_MAX_BUFFER_SIZE: raised },
      toolchain.python,
      toolchain.uv,
      dataDir,
    );
    await hugeAnswer(d, 0.001);
    results.push(
      await measure(
        d,
        "plugin-answers-raised-cap",
        `${ROUNDS} × ${ANSWER_MB} MB plugin answers (cap raised to ${ANSWER_MB + 14} MiB)`,
        () => sequential(ROUNDS, () => hugeAnswer(d, ANSWER_MB)),
      ),
    );
  } finally {
    await d.process.stop(10_000);
    await cleanupAll();
    rmSync(dataDir, { recursive: true, force: true });
  }

  const report = {
    measuredAt: new Date().toISOString(),
    label: LABEL ?? "current tree",
    node: process.version,
    cpu: cpus()[0]?.model.trim(),
    cpuCount: cpus().length,
    daemon:
      "bundled local daemon (scripts/build-local.mjs), one child process; RSS of that process only (plugins excluded)",
    results,
  };
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `hostile-memory${LABEL ? `-${LABEL}` : ""}.json`);
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  printTable(results);
  log(`wrote ${file}`);
}

function printTable(results: ScenarioResult[]) {
  const rows = results.map((r) => [
    r.label,
    String(r.rssBeforeMiB),
    String(r.rssPeakMiB),
    String(r.rssAfterMiB),
    String(r.rssSettledMiB),
    `${r.healthMs.p99} / ${r.healthMs.max}`,
    r.daemonAlive ? "yes" : "NO",
    r.answers.join("; "),
  ]);
  const header = ["scenario", "RSS before", "peak", "after 3 s", "after 10 s", "health p99/max ms", "alive", "answers"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => Math.min(row[i]?.length ?? 0, 70))));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(" | ");
  console.log(line(header));
  console.log(widths.map((w) => "-".repeat(w)).join("-|-"));
  for (const row of rows) console.log(line(row));
}

main().catch(async (err: unknown) => {
  log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  await cleanupAll();
  process.exit(1);
});
