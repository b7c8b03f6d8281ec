/**
 * Real official Dify plugins (langgenius/dify-official-plugins) against our local daemon and,
 * with --upstream, the upstream Go daemon beside it. See docs/benchmarks.md.
 *
 *   npx tsx bench/official-plugins.ts --plugins-dir <exported dify-official-plugins> [options]
 *
 * For each plugin (one at a time): pack it with upstream's packager (`commandline plugin package`),
 * upload and install it, find its plugin process (by its working directory, from /proc), read its
 * idle resident memory, make one call that needs no credentials (a tool that works offline, or the
 * provider's credential validation with empty credentials: any answer from the plugin itself, even
 * a credential error, proves it runs), `kill -9` the plugin process and time until a new process
 * answers the same call, then uninstall it. A small stand-in for Dify's inner API serves the
 * files tools read and encrypts endpoint settings as the identity.
 *
 * Results: bench/results/official-plugins.json and a table on stdout; progress on stderr.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import { Command, InvalidArgumentError } from "commander";
import { buildGoDaemon, goSource, startUpstreamBeside } from "./lib/go-daemon.js";
import {
  type CallResult,
  type Category,
  clip,
  DEFAULT_PLUGINS,
  describePlugin,
  dispatchProbe,
  type InstallResult,
  install,
  management,
  NETWORK,
  type Outcome,
  type PackResult,
  type PluginInfo,
  type Probe,
  pack,
  pluginLeader,
  pluginPids,
  rssMiB,
  sleep,
  type Target,
  timed,
  waitFor,
} from "./lib/official-plugins.js";
import { type RunningDaemon, startOurDaemon } from "./lib/our-daemon.js";
import { resultsDir } from "./lib/paths.js";
import { USER } from "./lib/plugin-api.js";
import { isAlive, MiB } from "./lib/proc.js";
import { runBenchmark } from "./lib/processes.js";
import { median, round } from "./lib/stats.js";
import { resolveToolchain } from "./lib/toolchain.js";

const KEY = "bench-daemon-key";
/** The Go daemon's configuration (bench/lib/go-daemon.ts) points its inner API here. */
const GO_INNER_API_PORT = 9;
const GO_INNER_API_KEY = "bench-inner-key";

// ---------------------------------------------------------------------------------------------
// Options

interface Options {
  pluginsDir: string;
  plugins: string[];
  packager?: string;
  daemonSrc?: string;
  upstream: boolean;
  out: string;
  installTimeoutMin: number;
  callTimeoutS: number;
  settleS: number;
  hardCapMin: number;
  keepWork: boolean;
  merge: boolean;
  pluginsCommit?: string;
  daemonCommit?: string;
}

const positiveNumber = (value: string): number => {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError("expected a positive number");
  return n;
};
const commaList = (value: string): string[] =>
  value
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);

function parseOptions(argv: string[]): Options {
  const program = new Command("official-plugins")
    .description(
      "Pack, install, call, kill -9 and restart real official Dify plugins on our local daemon (and optionally the upstream Go daemon)",
    )
    .requiredOption("--plugins-dir <dir>", "an exported tree of langgenius/dify-official-plugins (tools/, models/, …)")
    .option("--plugins <list>", "comma-separated plugin paths relative to --plugins-dir", commaList, DEFAULT_PLUGINS)
    .option("--packager <path>", "upstream's `commandline` binary (default: built from --daemon-src)")
    .option("--daemon-src <dir>", "a langgenius/dify-plugin-daemon tree (default: $DIFY_PLUGIN_DAEMON_SRC)")
    .option("--upstream", "also run every plugin on the upstream Go daemon (PostgreSQL + Redis on loopback)", false)
    .option("--out <file>", "results file", join(resultsDir, "official-plugins.json"))
    .option("--install-timeout-min <n>", "minutes one install may take", positiveNumber, 15)
    .option("--call-timeout-s <n>", "seconds one call may take", positiveNumber, 120)
    .option("--settle-s <n>", "seconds to wait after install before reading idle memory", positiveNumber, 3)
    .option("--hard-cap-min <n>", "the whole run stops after this many minutes", positiveNumber, 240)
    .option("--merge", "keep the other plugins' rows of an existing results file (re-running a few plugins)", false)
    .option("--keep-work", "keep the temporary directory (daemon logs, our DATA_DIR) for a post-mortem", false)
    .option(
      "--plugins-commit <sha>",
      "commit of the plugins tree, recorded in the results (when it is not a git checkout)",
    )
    .option(
      "--daemon-commit <sha>",
      "commit of the daemon tree, recorded in the results (when it is not a git checkout)",
    )
    .parse(argv, { from: "user" });
  const o = program.opts<Options>();
  return {
    ...o,
    pluginsDir: resolve(o.pluginsDir),
    daemonSrc: o.daemonSrc ?? process.env.DIFY_PLUGIN_DAEMON_SRC,
    out: resolve(o.out),
  };
}

const log = (line: string) => process.stderr.write(`[official-plugins] ${line}\n`);

interface FakeDify {
  baseUrl: string;
  /** The Go daemon's inner API (127.0.0.1:9) is served too. */
  goReachable: boolean;
  close(): void;
  fileUrl(name: string): string;
  requests: Record<string, number>;
}

/** Sets up an endpoint once per daemon, then sends `request` to it; `expect` tells the plugin's own answer apart. */
function endpointProbe(
  info: PluginInfo,
  settings: Record<string, unknown>,
  request: { path: string; headers?: Record<string, string>; body: unknown },
  expect: (status: number, body: string) => boolean,
): Probe {
  return {
    what: `endpoint POST ${request.path}`,
    call: (t, timeoutMs) =>
      timed(async () => {
        if (!t.hookId) {
          const name = `bench-${info.pluginId.replace("/", "-")}`;
          try {
            await management(t.daemon, "POST", "endpoint/setup", {
              plugin_unique_identifier: t.uniqueIdentifier,
              user_id: USER,
              settings,
              name,
            });
          } catch (err) {
            return { outcome: "daemon-error" as const, detail: clip(`endpoint setup: ${(err as Error).message}`) };
          }
          const data = (await management(
            t.daemon,
            "GET",
            `endpoint/list/plugin?plugin_id=${encodeURIComponent(info.pluginId)}&page=1&page_size=100`,
          )) as Array<{ hook_id?: string; name?: string }> | { list?: Array<{ hook_id?: string; name?: string }> };
          const list = Array.isArray(data) ? data : (data.list ?? []);
          t.hookId = list.find((e) => e.name === name)?.hook_id ?? list[0]?.hook_id;
          if (!t.hookId)
            return { outcome: "daemon-error" as const, detail: "endpoint setup answered but no endpoint is listed" };
        }
        const res = await fetch(`${t.daemon.baseUrl}/e/${t.hookId}${request.path}`, {
          method: "POST",
          headers: { "content-type": "application/json", ...request.headers },
          body: JSON.stringify(request.body),
          signal: AbortSignal.timeout(timeoutMs),
        });
        const body = await res.text();
        if (expect(res.status, body))
          return { outcome: "ok" as const, detail: clip(`HTTP ${res.status}: ${body}`, 200) };
        const outcome: Outcome = NETWORK.test(body)
          ? "no-network"
          : res.status >= 500 || body.includes('"code":-')
            ? "daemon-error"
            : "plugin-error";
        return { outcome, detail: clip(`HTTP ${res.status}: ${body}`) };
      }),
  };
}

const difyFile = (fake: FakeDify, name: string, mime: string) => ({
  dify_model_identity: "__dify__file__",
  url: fake.fileUrl(name),
  filename: name,
  extension: `.${name.split(".").pop() ?? ""}`,
  mime_type: mime,
  size: FILES[name]?.length ?? 0,
  type: "document",
});

const FILES: Record<string, string> = {
  "qa.csv": "question,answer\nWhat is Dify?,An LLM app platform\nWhat runs plugins?,The plugin daemon\n",
  // Not a DICOM file: the plugin must say so itself.
  "scan.dcm": "this is not a DICOM file\n",
};

/** Offline tool calls for plugins that have such a tool (parameters from each tool's YAML). */
function toolCalls(fake: FakeDify): Record<string, { tool: string; parameters: Record<string, unknown> }> {
  const text = "Dify is an LLM app platform.\n\nPlugins run in the plugin daemon.\n\nThis is the third paragraph.";
  return {
    "tools/regex": { tool: "regex_extract", parameters: { content: "order 123 shipped with 456", expression: "\\d+" } },
    "tools/json_process": {
      tool: "parse",
      parameters: { content: '{"a":{"b":42}}', json_filter: "$.a.b", ensure_ascii: true },
    },
    "tools/maths": { tool: "eval_expression", parameters: { expression: "2*(3+4)" } },
    "tools/chart": { tool: "line_chart", parameters: { data: "1;3;2", x_axis: "a;b;c" } },
    "tools/echarts": { tool: "bar_chart", parameters: { title: "bench", data: "1;3;2", x_axis: "a;b;c" } },
    "tools/qrcode": { tool: "qrcode_generator", parameters: { content: "hello", error_correction: "M", border: 2 } },
    "tools/general_chunk": {
      tool: "general_chunker",
      parameters: { input_variable: text, delimiter: "\n\n", max_chunk_length: 100 },
    },
    "tools/parent_child_chunk": {
      tool: "parentchild_chunker",
      parameters: {
        input_text: text,
        parent_mode: "paragraph",
        separator: "\n\n",
        max_length: 1024,
        subchunk_separator: "\n",
        subchunk_max_length: 512,
      },
    },
    "tools/qa_chunk": {
      tool: "qa_chunk",
      parameters: { input_file: difyFile(fake, "qa.csv", "text/csv"), question_column: 0, answer_column: 1 },
    },
    "tools/dicom_reader": {
      tool: "dicom_metadata",
      parameters: { dicom_file: difyFile(fake, "scan.dcm", "application/dicom") },
    },
    // These need the internet: the answer is the plugin's own network error.
    "tools/yahoo": { tool: "yahoo_finance_ticker", parameters: { symbol: "AAPL" } },
    "tools/wikipedia": { tool: "wikipedia_search", parameters: { query: "Dify", language: "en" } },
    "tools/arxiv": { tool: "arxiv_search", parameters: { query: "transformer" } },
    "tools/duckduckgo": { tool: "ddgo_search", parameters: { query: "dify", max_results: 1 } },
    "tools/hackernews": { tool: "get_top_stories", parameters: { limit: 1 } },
  };
}

function probeFor(info: PluginInfo, fake: FakeDify): Probe {
  const provider = info.provider;
  switch (info.category) {
    case "tool": {
      const call = toolCalls(fake)[info.path];
      if (call) {
        return dispatchProbe(
          "tool/invoke",
          {
            provider,
            tool: call.tool,
            credentials: {},
            credential_type: "unauthorized",
            tool_parameters: call.parameters,
          },
          `tool/invoke ${call.tool}`,
        );
      }
      return dispatchProbe("tool/validate_credentials", { provider, credentials: {} }, "tool/validate_credentials {}");
    }
    case "model":
      return info.providerCredentials
        ? dispatchProbe(
            "model/validate_provider_credentials",
            { provider, credentials: {} },
            "model/validate_provider_credentials {}",
          )
        : dispatchProbe(
            "model/validate_model_credentials",
            { provider, model_type: "llm", model: "bench-model", credentials: {} },
            "model/validate_model_credentials {} (customizable-model only)",
          );
    case "agent-strategy":
      return dispatchProbe(
        "agent_strategy/invoke",
        {
          agent_strategy_provider: provider,
          agent_strategy: info.items[0] ?? "",
          agent_strategy_params: {
            query: "What is 2+2?",
            instruction: "",
            maximum_iterations: 1,
            tools: [],
            model: {
              provider: "langgenius/openai/openai",
              model: "gpt-4o-mini",
              model_type: "llm",
              mode: "chat",
              completion_params: {},
              type: "model-selector",
            },
          },
        },
        `agent_strategy/invoke ${info.items[0] ?? ""} (its LLM call goes to the inner-API stand-in)`,
      );
    case "datasource":
      return dispatchProbe(
        "datasource/validate_credentials",
        { provider, credentials: {} },
        "datasource/validate_credentials {}",
      );
    case "trigger":
      return dispatchProbe(
        "trigger/validate_credentials",
        { provider, credentials: {} },
        "trigger/validate_credentials {}",
      );
    case "endpoint":
      if (info.path === "extensions/slack_bot") {
        return endpointProbe(
          info,
          { bot_token: "xoxb-bench", allow_retry: false, app: { app_id: "bench-app" } },
          { path: "/", body: { type: "url_verification", challenge: "bench-challenge-42" } },
          (status, body) => status === 200 && body.includes("bench-challenge-42"),
        );
      }
      if (info.path === "extensions/openai_compatible") {
        return endpointProbe(
          info,
          { api_key: "bench-endpoint-key", app_id: { app_id: "bench-app" }, memory_mode: "last_user_message" },
          {
            path: "/chat/completions",
            headers: { authorization: "Bearer wrong-key" },
            body: { messages: [{ role: "user", content: "hi" }] },
          },
          (status, body) => status === 401 && body.includes("Unauthorized"),
        );
      }
      return endpointProbe(
        info,
        {},
        { path: info.endpoints[0]?.path ?? "/", body: {} },
        (status) => status > 0 && status < 500,
      );
  }
}

// ---------------------------------------------------------------------------------------------
// The stand-in for Dify

async function startFakeDify(): Promise<FakeDify> {
  const requests: Record<string, number> = {};
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const url = req.url ?? "/";
      const name = url.replace(/^\/files\//, "");
      if (req.method === "GET" && url.startsWith("/files/") && FILES[name] !== undefined) {
        requests.files = (requests.files ?? 0) + 1;
        res.writeHead(200, { "content-type": "application/octet-stream" }).end(FILES[name]);
        return;
      }
      const path = url.replace(/^\/inner\/api\//, "");
      requests[path] = (requests[path] ?? 0) + 1;
      let body: { data?: unknown } = {};
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as typeof body;
      } catch {
        // answered below
      }
      res.setHeader("content-type", "application/json");
      if (path === "invoke/encrypt") {
        // encrypt/decrypt as the identity; `clear` answers the same shape.
        res.end(JSON.stringify({ data: { data: body.data ?? {} }, error: "" }));
        return;
      }
      res.end(JSON.stringify({ data: null, error: `the benchmark's stand-in for Dify does not serve ${path}` }));
    });
  });
  const listen = (srv: Server, port: number) =>
    new Promise<number>((resolvePort, reject) => {
      srv.once("error", reject);
      srv.listen(port, "127.0.0.1", () => {
        srv.off("error", reject);
        const a = srv.address();
        resolvePort(typeof a === "object" && a ? a.port : port);
      });
    });
  // Node's fetch refuses port 9 (a "bad port"), so ours gets a port of its own; the Go daemon's
  // configuration (bench/lib/go-daemon.ts) points its inner API at 127.0.0.1:9 (root only).
  const port = await listen(server, 0);
  const goServer = createServer((req, res) => server.emit("request", req, res));
  const goPort = await listen(goServer, GO_INNER_API_PORT).catch(() => undefined);
  const baseUrl = `http://127.0.0.1:${port}`;
  return {
    baseUrl,
    goReachable: goPort !== undefined,
    fileUrl: (n) => `${baseUrl}/files/${n}`,
    requests,
    close: () => {
      server.close();
      goServer.close();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// One plugin on one daemon

interface DaemonResult {
  install: InstallResult;
  started: boolean;
  processes: number;
  pid?: number;
  idleRssMiB?: number;
  call?: CallResult;
  rssAfterCallMiB?: number;
  restart?: {
    killedPid: number;
    newPid?: number;
    newPidMs?: number;
    answerMs?: number;
    answered: boolean;
    attempts: number;
    detail: string;
  };
  uninstall?: { ok: boolean; seconds: number; processGone: boolean; message: string };
}

async function uninstall(t: Target): Promise<NonNullable<DaemonResult["uninstall"]>> {
  const started = performance.now();
  const seconds = () => round((performance.now() - started) / 1000, 1);
  try {
    const data = (await management(t.daemon, "GET", "management/list?page=1&page_size=256")) as {
      list: Array<{ id?: string; installation_id?: string; plugin_id: string }>;
    };
    const entry = data.list.find((p) => p.plugin_id === t.pluginId);
    if (!entry)
      return {
        ok: false,
        seconds: seconds(),
        processGone: pluginPids(t.daemon, t.uniqueIdentifier).length === 0,
        message: "not in the installation list",
      };
    await management(
      t.daemon,
      "POST",
      "management/uninstall",
      { plugin_installation_id: entry.installation_id ?? entry.id },
      180_000,
    );
    const answeredAfter = seconds();
    const gone = await waitFor(
      () => (pluginPids(t.daemon, t.uniqueIdentifier).length === 0 ? true : undefined),
      20_000,
      100,
    );
    return { ok: true, seconds: answeredAfter, processGone: gone === true, message: "" };
  } catch (err) {
    return {
      ok: false,
      seconds: seconds(),
      processGone: pluginPids(t.daemon, t.uniqueIdentifier).length === 0,
      message: clip((err as Error).message),
    };
  }
}

async function runOne(
  daemon: RunningDaemon,
  name: Target["name"],
  info: PluginInfo,
  pkg: Buffer,
  probe: Probe,
  o: Options,
): Promise<DaemonResult> {
  log(`  ${name}: installing`);
  const inst = await install({ daemon }, pkg, o.installTimeoutMin * 60_000);
  const result: DaemonResult = { install: inst, started: false, processes: 0 };
  if (!inst.ok || !inst.uniqueIdentifier) {
    log(`  ${name}: install failed after ${inst.seconds}s: ${clip(inst.message, 400)}`);
    return result;
  }
  const t: Target = { name, daemon, pluginId: info.pluginId, uniqueIdentifier: inst.uniqueIdentifier };
  // Ours starts the plugin before the task succeeds; upstream's scheduler may start it a moment later.
  const pid = await waitFor(() => pluginLeader(daemon, t.uniqueIdentifier), 30_000, 100);
  result.started = pid !== undefined;
  result.pid = pid;
  await sleep(o.settleS * 1000);
  const pids = pluginPids(daemon, t.uniqueIdentifier);
  result.processes = pids.length;
  result.idleRssMiB = pids.length ? rssMiB(pids) : undefined;
  log(
    `  ${name}: installed in ${inst.seconds}s, pid ${pid ?? "none"}, idle RSS ${result.idleRssMiB ?? "?"} MiB; calling ${probe.what}`,
  );
  result.call = await probe.call(t, o.callTimeoutS * 1000);
  result.rssAfterCallMiB = rssMiB(pluginPids(daemon, t.uniqueIdentifier));
  log(`  ${name}: call ${result.call.outcome} in ${result.call.ms} ms: ${clip(result.call.detail, 200)}`);

  const victim = pluginLeader(daemon, t.uniqueIdentifier);
  if (victim !== undefined) {
    const killedAt = performance.now();
    process.kill(victim, "SIGKILL");
    const newPid = await waitFor(() => {
      const p = pluginLeader(daemon, t.uniqueIdentifier);
      return p !== undefined && p !== victim && isAlive(p) ? p : undefined;
    }, 60_000);
    const newPidMs = newPid !== undefined ? round(performance.now() - killedAt, 0) : undefined;
    let attempts = 0;
    let last: CallResult | undefined;
    // A call that was not answered before the kill is tried once after it, not for a minute.
    const deadline = performance.now() + (result.call.answered ? 60_000 : 0);
    if (newPid !== undefined) {
      do {
        attempts += 1;
        last = await probe.call(t, o.callTimeoutS * 1000);
        if (last.answered) break;
        await sleep(100);
      } while (performance.now() < deadline);
    }
    const answered = last?.answered ?? false;
    result.restart = {
      killedPid: victim,
      newPid,
      newPidMs,
      answerMs: answered ? round(performance.now() - killedAt, 0) : undefined,
      answered,
      attempts,
      detail: newPid === undefined ? "no new plugin process within 60 s" : clip(last?.detail ?? "", 200),
    };
    log(
      `  ${name}: kill -9 ${victim} → new pid ${newPid ?? "none"} after ${newPidMs ?? "-"} ms, answered after ${result.restart.answerMs ?? "-"} ms`,
    );
  }
  result.uninstall = await uninstall(t);
  log(
    `  ${name}: uninstall ${result.uninstall.ok ? "answered" : "FAILED"} after ${result.uninstall.seconds}s, process ${result.uninstall.processGone ? "gone" : "STILL RUNNING"}${result.uninstall.message ? `: ${result.uninstall.message}` : ""}`,
  );
  return result;
}

// ---------------------------------------------------------------------------------------------
// Table

function cell(r: DaemonResult | undefined): string[] {
  if (!r) return ["", "", "", "", ""];
  const call = r.call ? (r.call.answered ? `yes (${r.call.outcome})` : `NO (${r.call.outcome})`) : "-";
  const restart = r.restart ? (r.restart.answered ? String(r.restart.answerMs) : "NO") : "-";
  return [
    r.install.ok ? "yes" : "NO",
    String(r.install.seconds),
    r.idleRssMiB === undefined ? "-" : String(r.idleRssMiB),
    call,
    restart,
  ];
}

function table(
  rows: Array<{ plugin: string; ours?: DaemonResult; upstream?: DaemonResult }>,
  withUpstream: boolean,
): string {
  const head = ["plugin", "installed", "s", "idle RSS MiB", "call answered", "restart ms"];
  const header = withUpstream ? [...head, ...head.slice(1).map((h) => `go ${h}`)] : head;
  const body = rows.map((r) => [r.plugin, ...cell(r.ours), ...(withUpstream ? cell(r.upstream) : [])]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? "").length)));
  const line = (cols: string[]) => `| ${cols.map((c, i) => c.padEnd(widths[i] ?? 0)).join(" | ")} |`;
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...body.map(line)].join("\n");
}

function summary(results: Array<DaemonResult | undefined>) {
  const present = results.filter((r): r is DaemonResult => r !== undefined);
  const restarts = present.flatMap((r) =>
    r.restart?.answered && r.restart.answerMs !== undefined ? [r.restart.answerMs] : [],
  );
  const newPids = present.flatMap((r) => (r.restart?.newPidMs !== undefined ? [r.restart.newPidMs] : []));
  const rss = present.flatMap((r) => (r.idleRssMiB !== undefined ? [r.idleRssMiB] : []));
  return {
    total: present.length,
    installed: present.filter((r) => r.install.ok).length,
    started: present.filter((r) => r.started).length,
    answered: present.filter((r) => r.call?.answered).length,
    callOutcomes: present.reduce<Record<string, number>>((acc, r) => {
      const k = r.call?.outcome ?? "not called";
      acc[k] = (acc[k] ?? 0) + 1;
      return acc;
    }, {}),
    restartedAndAnswered: restarts.length,
    medianRestartAnswerMs: restarts.length ? median(restarts) : null,
    medianNewProcessMs: newPids.length ? median(newPids) : null,
    medianIdleRssMiB: rss.length ? median(rss) : null,
    maxIdleRssMiB: rss.length ? Math.max(...rss) : null,
    uninstalledWithProcessGone: present.filter((r) => r.uninstall?.ok && r.uninstall.processGone).length,
  };
}

// ---------------------------------------------------------------------------------------------
// Main

async function main(o: Options): Promise<void> {
  const startedAt = new Date();
  const loadAtStart = loadavg().map((l) => round(l, 2));
  const work = mkdtempSync(join(tmpdir(), "bench-official-plugins-"));
  const toolchain = await resolveToolchain(log);
  log(`Python ${toolchain.pythonVersion} (${toolchain.python}), uv ${toolchain.uv}`);

  // The packager (and, with --upstream, the Go daemon) from upstream's source.
  let packager = o.packager;
  let goBuild: Awaited<ReturnType<typeof buildGoDaemon>> | undefined;
  if (!packager || o.upstream) {
    const src = o.daemonSrc ? { dir: o.daemonSrc } : goSource();
    if (!src.dir) throw new Error(`no packager: pass --packager or --daemon-src (${src.reason ?? ""})`);
    goBuild = await buildGoDaemon(src.dir, log);
    packager ??= goBuild.commandline;
  }

  const infos: PluginInfo[] = [];
  const missing: string[] = [];
  for (const path of o.plugins) {
    if (!existsSync(join(o.pluginsDir, path, "manifest.yaml"))) missing.push(path);
    else infos.push(describePlugin(o.pluginsDir, path));
  }
  if (missing.length) log(`not in the plugins tree (skipped): ${missing.join(", ")}`);

  const fake = await startFakeDify();
  log(
    `Dify stand-in (inner API + files) on ${fake.baseUrl}${fake.goReachable ? ` and 127.0.0.1:${GO_INNER_API_PORT}` : ""}`,
  );
  process.env.DIFY_INNER_API_URL = fake.baseUrl;
  process.env.DIFY_INNER_API_KEY = GO_INNER_API_KEY;
  const memoryFloorMiB = Number(process.env.PLUGIN_MEMORY_FLOOR_MB ?? 1024);

  const logDir = join(work, "logs");
  mkdirSync(logDir, { recursive: true });
  const ours = await startOurDaemon({ mode: "bundle", key: KEY, python: toolchain.python, uv: toolchain.uv, logDir });
  log(`ours: ${ours.describe} on ${ours.baseUrl}, DATA_DIR ${ours.dataDir}`);
  let upstream: RunningDaemon | undefined;
  let upstreamError: string | undefined;
  let goWork: string | undefined;
  if (o.upstream && goBuild) {
    const started = await startUpstreamBeside(
      {
        build: goBuild,
        key: KEY,
        python: toolchain.python,
        uv: toolchain.uv,
        workPrefix: "bench-official-plugins-go-",
      },
      log,
    );
    ({ daemon: upstream, workDir: goWork, error: upstreamError } = started);
    if (upstream)
      log(
        `upstream: ${upstream.describe} on ${upstream.baseUrl}${fake.goReachable ? "" : " (its inner API is unreachable: endpoint settings cannot be encrypted)"}`,
      );
    else log(`upstream daemon did not start: ${upstreamError}`);
  }

  // Messages quote paths of this machine; the results name them by role instead.
  const replacements: Array<[string, string]> = [
    [ours.dataDir, "<DATA_DIR>"],
    [work, "<work>"],
    [o.pluginsDir, "<plugins>"],
    [dirname(toolchain.uv), "<uv dir>"],
    [dirname(toolchain.python), "<python dir>"],
    [process.env.HOME ?? "/nonexistent-home", "~"],
  ];
  if (goWork) replacements.unshift([goWork, "<upstream work>"]);
  // Also temporary directories of earlier runs (merged rows) and paths cut short by clipping.
  const tempDirs = new RegExp(`${tmpdir().replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/bench-[^/"\\s…]*`, "g");
  const scrub = (text: string) =>
    replacements
      .reduce((t, [from, to]) => (from.length > 1 ? t.split(from).join(to) : t), text)
      .replace(tempDirs, "<tmp>");
  type Row = {
    plugin: string;
    ranAt: string;
    pluginId: string;
    version: string;
    category: Category;
    manifestMemoryMiB: number;
    effectiveLimitMiB: number;
    uvLock: boolean;
    call: string;
    pack: Omit<PackResult, "file">;
    ours?: DaemonResult;
    upstream?: DaemonResult;
  };
  const rows: Row[] = [];
  // With --merge, rows of plugins not run this time come from the existing file.
  const previousDoc =
    o.merge && existsSync(o.out)
      ? (JSON.parse(readFileSync(o.out, "utf8")) as { startedAt?: string; plugins?: Row[] })
      : {};
  const previous: Row[] = (previousDoc.plugins ?? []).map((r) => ({
    ...r,
    ranAt: r.ranAt ?? previousDoc.startedAt ?? "",
  }));
  const allRows = (): Row[] => {
    const fresh = new Map(rows.map((r) => [r.plugin, r]));
    const merged = previous.map((r) => fresh.get(r.plugin) ?? r);
    return [...merged, ...rows.filter((r) => !previous.some((p) => p.plugin === r.plugin))];
  };
  const writeResults = () => {
    const doc = {
      generatedAt: new Date().toISOString(),
      startedAt: startedAt.toISOString(),
      machine: {
        cpus: cpus().length,
        cpuModel: cpus()[0]?.model ?? "",
        memoryGiB: round(totalmem() / 1024 ** 3, 1),
        platform: process.platform,
        node: process.version,
        loadAverageAtStart: loadAtStart,
        loadAverageNow: loadavg().map((l) => round(l, 2)),
      },
      sources: {
        officialPlugins: o.pluginsCommit ?? null,
        pluginDaemon: o.daemonCommit ?? (goBuild && goBuild.commit !== "unknown" ? goBuild.commit : null),
        goVersion: goBuild?.goVersion ?? null,
      },
      python: toolchain.pythonVersion,
      ours: {
        describe: ours.describe,
        memoryFloorMiB,
        config: "STORE_BACKEND=local, fresh DATA_DIR, FORCE_VERIFYING_SIGNATURE=false, own port",
      },
      upstream: upstream
        ? { describe: upstream.describe }
        : o.upstream
          ? { error: upstreamError ?? "not started" }
          : null,
      method: {
        pack: "upstream `commandline plugin package <dir>` (uv on PATH for `uv export`)",
        pid: "python processes under the daemon whose /proc/<pid>/cwd is the installed plugin directory (matched by checksum); RSS = VmRSS",
        idle: `VmRSS ${o.settleS}s after the install task succeeded, before any call`,
        answered:
          "ok = the call succeeded; plugin-error = the plugin's own error (e.g. credentials); no-network = the plugin's error comes from having no internet; daemon-error/no-answer = not an answer from the plugin",
        restart:
          "kill -9 of the plugin process; restart ms = kill until the same call is answered again (polling for the new process first)",
        order: upstream
          ? "per plugin, ours and upstream alternate who installs first (both share one uv cache): see install.firstOnThisPackage"
          : "ours only",
      },
      notInRepository: missing,
      summary: {
        ours: summary(allRows().map((r) => r.ours)),
        ...(upstream || o.merge ? { upstream: summary(allRows().map((r) => r.upstream)) } : {}),
      },
      difyStandIn: fake.requests,
      plugins: allRows(),
    };
    mkdirSync(dirname(o.out), { recursive: true });
    writeFileSync(o.out, `${JSON.stringify(doc, (_k, v: unknown) => (typeof v === "string" ? scrub(v) : v), 2)}\n`);
  };

  const pkgDir = join(work, "packages");
  mkdirSync(pkgDir, { recursive: true });
  for (const [i, info] of infos.entries()) {
    log(`[${i + 1}/${infos.length}] ${info.path} (${info.pluginId} ${info.version}, ${info.category})`);
    const packed = await pack(
      packager,
      dirname(toolchain.uv),
      join(o.pluginsDir, info.path),
      join(pkgDir, `${info.path.replace("/", "__")}.difypkg`),
    );
    const probe = probeFor(info, fake);
    const row: Row = {
      plugin: info.path,
      ranAt: new Date().toISOString(),
      pluginId: info.pluginId,
      version: info.version,
      category: info.category,
      manifestMemoryMiB: round(info.manifestMemoryBytes / MiB, 1),
      effectiveLimitMiB: Math.max(round(info.manifestMemoryBytes / MiB, 1), memoryFloorMiB),
      uvLock: info.hasUvLock,
      call: probe.what,
      pack: { ok: packed.ok, seconds: packed.seconds, bytes: packed.bytes, message: packed.message },
    };
    rows.push(row);
    if (!packed.ok || !packed.file) {
      log(`  packing failed: ${packed.message}`);
      writeResults();
      continue;
    }
    const pkg = readFileSync(packed.file);
    const order: Array<"ours" | "upstream"> = upstream
      ? i % 2 === 0
        ? ["ours", "upstream"]
        : ["upstream", "ours"]
      : ["ours"];
    for (const [k, which] of order.entries()) {
      const daemon = which === "ours" ? ours : (upstream as RunningDaemon);
      const r = await runOne(daemon, which, info, pkg, probeFor(info, fake), o);
      r.install.firstOnThisPackage = k === 0;
      row[which] = r;
    }
    rmSync(packed.file, { force: true });
    writeResults();
  }

  writeResults();
  const final = allRows();
  const withUpstream = final.some((r) => r.upstream !== undefined);
  process.stdout.write(`\n${table(final, withUpstream)}\n\n`);
  const s = summary(final.map((r) => r.ours));
  process.stdout.write(
    `ours: ${s.installed}/${s.total} installed, ${s.started} started, ${s.answered} answered, median restart ${s.medianRestartAnswerMs ?? "-"} ms (new process after ${s.medianNewProcessMs ?? "-"} ms), median idle RSS ${s.medianIdleRssMiB ?? "-"} MiB\n`,
  );
  if (withUpstream) {
    const u = summary(final.map((r) => r.upstream));
    process.stdout.write(
      `upstream: ${u.installed}/${u.total} installed, ${u.started} started, ${u.answered} answered, median restart ${u.medianRestartAnswerMs ?? "-"} ms (new process after ${u.medianNewProcessMs ?? "-"} ms), median idle RSS ${u.medianIdleRssMiB ?? "-"} MiB\n`,
    );
  }
  process.stdout.write(`results: ${o.out}\n`);

  await ours.stop();
  await upstream?.stop();
  fake.close();
  if (o.keepWork) log(`kept: ${work} (logs), ${ours.dataDir} (our DATA_DIR)${goWork ? `, ${goWork} (upstream)` : ""}`);
  else for (const dir of [work, ours.dataDir, goWork]) if (dir) rmSync(dir, { recursive: true, force: true });
}

await runBenchmark(log, async (hardCap) => {
  const options = parseOptions(process.argv.slice(2));
  hardCap(options.hardCapMin);
  await main(options);
});
