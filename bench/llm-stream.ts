/**
 * A streamed LLM answer through a real official model plugin, on our local daemon beside the
 * upstream Go daemon in the same run. See docs/benchmarks.md ("LLM streaming").
 *
 *   npx tsx bench/llm-stream.ts --plugins-dir <exported dify-official-plugins> [options]
 *
 * The plugin (default models/deepseek, whose model class is the SDK's OpenAI-compatible one) is
 * packed with upstream's packager and installed on both daemons. Its endpoint_url points at a
 * stand-in OpenAI-compatible server here that streams `--tokens` chunks per completion, so the
 * plugin's own work (parsing each chunk, building Dify's LLMResultChunk) is what is measured,
 * not a network. Rounds alternate the daemons; each times `--calls` sequential calls and reads
 * the plugin process's CPU over them. Every answer is checked token by token.
 *
 * Results: bench/results/llm-stream.json and a table on stdout; progress on stderr.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Command } from "commander";
import { startLoadSampler } from "./lib/background-load.js";
import { buildGoDaemon, goSource, type RunningGoDaemon, startUpstreamBeside } from "./lib/go-daemon.js";
import { describePlugin, pack, packageFile } from "./lib/official-plugins.js";
import { type RunningDaemon, startOurDaemon } from "./lib/our-daemon.js";
import { resultsDir } from "./lib/paths.js";
import {
  type DaemonEndpoint,
  dispatchHeaders,
  installIdentifier,
  TENANT,
  uploadPackage,
  waitForTask,
} from "./lib/plugin-api.js";
import { processTree } from "./lib/proc.js";
import { runBenchmark } from "./lib/processes.js";
import { percentiles, round } from "./lib/stats.js";
import { resolveToolchain } from "./lib/toolchain.js";

const KEY = "bench-daemon-key";

const options = new Command()
  .requiredOption("--plugins-dir <dir>", "an export of langgenius/dify-official-plugins")
  .option("--plugin <path>", "the model plugin (its LLM must take an endpoint_url credential)", "models/deepseek")
  .option("--model <name>", "the model to call", "deepseek-chat")
  .option("--tokens <n>", "chunks per streamed completion", "300")
  .option("--calls <n>", "timed calls per round and daemon", "30")
  .option("--rounds <n>", "rounds (daemons alternate)", "3")
  .option("--plugins-commit <sha>", "commit of the plugins tree (recorded; keys the package cache)")
  .option("--daemon-src <dir>", "a langgenius/dify-plugin-daemon tree (default: $DIFY_PLUGIN_DAEMON_SRC)")
  .parse()
  .opts<{
    pluginsDir: string;
    plugin: string;
    model: string;
    tokens: string;
    calls: string;
    rounds: string;
    pluginsCommit?: string;
    daemonSrc?: string;
  }>();
const TOKENS = Number(options.tokens);
const CALLS = Number(options.calls);
const ROUNDS = Number(options.rounds);

const log = (line: string) => process.stderr.write(`[llm-stream ${new Date().toISOString().slice(11, 19)}] ${line}\n`);

/** An OpenAI-compatible chat endpoint streaming TOKENS chunks `t0 t1 …`, then usage and [DONE]. */
function standIn(): Promise<{ server: Server; url: string }> {
  const chunk = (delta: object, finish: string | null, extra: object = {}) =>
    `data: ${JSON.stringify({ id: "bench", object: "chat.completion.chunk", model: options.model, choices: [{ index: 0, delta, finish_reason: finish }], ...extra })}\n\n`;
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      for (let i = 0; i < TOKENS; i++) res.write(chunk({ content: `t${i} ` }, null));
      res.write(
        chunk({}, "stop", { usage: { prompt_tokens: 3, completion_tokens: TOKENS, total_tokens: TOKENS + 3 } }),
      );
      res.end("data: [DONE]\n\n");
    });
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve({ server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}` }),
    ),
  );
}

const expected = Array.from({ length: TOKENS }, (_, i) => `t${i} `).join("");

interface Target {
  name: "ours" | "upstream";
  daemon: RunningDaemon;
  endpoint: DaemonEndpoint;
}

async function call(t: Target, data: object): Promise<{ ms: number; ok: boolean; detail: string }> {
  const started = performance.now();
  const res = await fetch(`${t.daemon.baseUrl}/plugin/${TENANT}/dispatch/llm/invoke`, {
    method: "POST",
    headers: dispatchHeaders(t.endpoint),
    body: JSON.stringify({ user_id: "bench", data }),
  });
  const events = (await res.text())
    .split("\n")
    .filter((l) => l.startsWith("data: "))
    .map(
      (l) =>
        JSON.parse(l.slice(6)) as {
          code: number;
          message: string;
          data?: { delta?: { message?: { content?: string } } };
        },
    );
  const ms = performance.now() - started;
  const failed = events.find((e) => e.code !== 0);
  const content = events.map((e) => e.data?.delta?.message?.content ?? "").join("");
  if (failed) return { ms, ok: false, detail: failed.message.slice(0, 300) };
  return {
    ms,
    ok: content === expected,
    detail: content === expected ? "" : `answer differs: ${content.slice(0, 80)}`,
  };
}

const pluginCpu = (t: Target) => processTree(t.daemon.rootPid).find((p) => /python/.test(p.comm));

async function main() {
  const work = mkdtempSync(join(tmpdir(), "bench-llm-stream-"));
  const toolchain = await resolveToolchain(log);
  const src = options.daemonSrc ? { dir: options.daemonSrc } : goSource();
  if (!src.dir) throw new Error(`upstream's packager and daemon are needed: pass --daemon-src (${src.reason ?? ""})`);
  const build = await buildGoDaemon(src.dir, log);
  const info = describePlugin(options.pluginsDir, options.plugin);
  const file = packageFile(info.path, options.pluginsCommit, work);
  if (!existsSync(file)) {
    const packed = await pack(build.commandline, dirname(toolchain.uv), join(options.pluginsDir, info.path), file);
    if (!packed.ok) throw new Error(`packing ${info.path} failed: ${packed.message}`);
  }
  const pkg = readFileSync(file);
  const { server, url } = await standIn();
  const sampler = startLoadSampler(() => []);
  const whole = sampler.window("whole run");
  const targets: Target[] = [];
  try {
    const ours = await startOurDaemon({
      mode: "bundle",
      key: KEY,
      python: toolchain.python,
      uv: toolchain.uv,
      logDir: work,
    });
    const up = await startUpstreamBeside(
      { build, key: KEY, python: toolchain.python, uv: toolchain.uv, workPrefix: "bench-llm-go-" },
      log,
    );
    if (!up.daemon) throw new Error(`upstream did not start: ${up.error}`);
    const upstream: RunningGoDaemon = up.daemon;
    for (const [name, daemon] of [
      ["ours", ours],
      ["upstream", upstream],
    ] as const)
      targets.push({ name, daemon, endpoint: { baseUrl: daemon.baseUrl, key: KEY, pluginId: info.pluginId } });
    const data = {
      provider: info.pluginId.split("/")[1],
      model_type: "llm",
      model: options.model,
      credentials: { api_key: "sk-bench", endpoint_url: url, mode: "chat" },
      prompt_messages: [{ role: "user", content: "hi" }],
      model_parameters: {},
      tools: [],
      stop: [],
      stream: true,
    };
    for (const t of targets) {
      const uid = await uploadPackage(t.endpoint, pkg);
      const { taskId, allInstalled } = await installIdentifier(t.endpoint, uid);
      if (!allInstalled) await waitForTask(t.endpoint, taskId, 900_000);
      let first = await call(t, data);
      for (let i = 0; i < 300 && !first.ok; i++) {
        await new Promise((r) => setTimeout(r, 200));
        first = await call(t, data);
      }
      if (!first.ok) throw new Error(`${t.name}: no good answer: ${first.detail}`);
      for (let i = 0; i < 5; i++) await call(t, data);
      log(`${t.name}: ${info.path} installed and answering`);
    }
    const samples: Record<string, { ms: number[]; cpuMsPerCall: number[]; rounds: object[] }> = {
      ours: { ms: [], cpuMsPerCall: [], rounds: [] },
      upstream: { ms: [], cpuMsPerCall: [], rounds: [] },
    };
    for (let r = 0; r < ROUNDS; r++) {
      for (const t of r % 2 === 0 ? targets : [...targets].reverse()) {
        const window = sampler.window(`${t.name} round ${r + 1}`);
        const plugin = pluginCpu(t);
        if (!plugin) throw new Error(`${t.name}: no plugin process`);
        const before = plugin.cpuSeconds;
        const ms: number[] = [];
        for (let i = 0; i < CALLS; i++) {
          const c = await call(t, data);
          if (!c.ok) throw new Error(`${t.name}: ${c.detail}`);
          ms.push(c.ms);
        }
        const after = processTree(t.daemon.rootPid).find((p) => p.pid === plugin.pid)?.cpuSeconds ?? before;
        const cpuMsPerCall = round(((after - before) * 1000) / CALLS, 1);
        const load = window.end();
        samples[t.name]!.ms.push(...ms);
        samples[t.name]!.cpuMsPerCall.push(cpuMsPerCall);
        samples[t.name]!.rounds.push({
          p50Ms: percentiles(ms).p50,
          cpuMsPerCall,
          otherCores: load.otherCores,
          loadAverage: load.loadAverage1End,
        });
        log(
          `${t.name} round ${r + 1}: p50 ${percentiles(ms).p50} ms, plugin CPU ${cpuMsPerCall} ms/call, other CPU ${load.otherCores} cores`,
        );
      }
    }
    const summary = Object.fromEntries(
      Object.entries(samples).map(([name, s]) => [
        name,
        { latencyMs: percentiles(s.ms), pluginCpuMsPerCall: s.cpuMsPerCall },
      ]),
    );
    const o = summary.ours!;
    const u = summary.upstream!;
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const table = [
      `LLM streaming: ${info.path} (${options.model}), ${TOKENS} chunks per answer, ${CALLS} calls × ${ROUNDS} rounds per daemon, ${cpus().length} cores, load ${loadavg()[0]?.toFixed(2)}`,
      "| measure | upstream | ours | ours/upstream |",
      "|---|---:|---:|---:|",
      `| latency p50 [ms] | ${u.latencyMs.p50} | ${o.latencyMs.p50} | ${round(o.latencyMs.p50 / u.latencyMs.p50, 2)} |`,
      `| latency p99 [ms] | ${u.latencyMs.p99} | ${o.latencyMs.p99} | ${round(o.latencyMs.p99 / u.latencyMs.p99, 2)} |`,
      `| plugin CPU per answer, median of rounds [ms] | ${median(u.pluginCpuMsPerCall)} | ${median(o.pluginCpuMsPerCall)} | ${round(median(o.pluginCpuMsPerCall) / median(u.pluginCpuMsPerCall), 2)} |`,
    ].join("\n");
    console.log(table);
    const result = {
      measuredAt: new Date().toISOString(),
      plugin: info.path,
      pluginsCommit: options.pluginsCommit ?? null,
      upstream: build.commit,
      tokens: TOKENS,
      calls: CALLS,
      rounds: samples,
      summary,
      load: whole.end(),
    };
    writeFileSync(join(resultsDir, "llm-stream.json"), `${JSON.stringify(result, null, 1)}\n`);
    log(`written to bench/results/llm-stream.json`);
  } finally {
    sampler.stop();
    server.close();
    for (const t of targets) await t.daemon.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

await runBenchmark(log, main);
