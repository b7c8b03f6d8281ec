/**
 * Installed-but-idle official plugins on our local daemon beside the upstream Go daemon, in the
 * same run. See docs/benchmarks.md ("Idle plugins").
 *
 *   npx tsx bench/idle-plugins.ts --plugins-dir <exported dify-official-plugins> [options]
 *
 * Both daemons get the same packages (packed with upstream's `commandline plugin package`) and one
 * data directory each for the whole run: install the first N₁ plugins, measure, install up to N₂,
 * measure, … For every N and every round:
 *  - start-up: each daemon is stopped and started again on the same data (ours with
 *    PLUGIN_IDLE_TIMEOUT=<idle timeout>); time from spawn until /health/check answers and until a
 *    call to one plugin (tools/regex) is answered; for upstream also until all N plugins run;
 *  - idle memory: after our daemon has stopped the plugin the start-up call woke (idle timeout),
 *    RSS and PSS of each daemon's whole process tree (daemon + plugin processes), and upstream's
 *    PostgreSQL and Redis apart;
 *  - first call after idle: tools/regex and tools/chart (when installed) called after that idle
 *    period, then once more (warm);
 *  - ours with every plugin in PLUGIN_KEEP_WARM (all started with the daemon, never idled): the
 *    same start-up times, until all N run, and the memory beside upstream's;
 *  - the machine's background load over each phase (other processes' CPU, load average).
 *
 * Results: bench/results/idle-plugins.json (each invocation appends a run with --append) and a
 * table on stdout; progress on stderr.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import { Command, InvalidArgumentError } from "commander";
import { type LoadSampler, type LoadWindow, startLoadSampler } from "./lib/background-load.js";
import { buildGoDaemon, goSource, type RunningGoDaemon, startUpstreamBeside } from "./lib/go-daemon.js";
import {
  type CallResult,
  checksumOf,
  clip,
  cwdOf,
  DEFAULT_PLUGINS,
  describePlugin,
  dispatchProbe,
  type InstallResult,
  install,
  type PluginInfo,
  type Probe,
  pack,
  packageFile,
  pluginPids,
  sleep,
  type Target,
} from "./lib/official-plugins.js";
import { type RunningDaemon, startOurDaemon } from "./lib/our-daemon.js";
import { repoRoot, resultsDir } from "./lib/paths.js";
import { MiB, processTree, pssBytes, rssBytes } from "./lib/proc.js";
import { runBenchmark } from "./lib/processes.js";
import { median, round } from "./lib/stats.js";
import { resolveToolchain } from "./lib/toolchain.js";

const KEY = "bench-daemon-key";

/** The calls timed: a light plugin (start-up and after idle) and one that imports matplotlib. */
const PROBE_CALLS: Record<string, { tool: string; parameters: Record<string, unknown> }> = {
  "tools/regex": { tool: "regex_extract", parameters: { content: "order 123 shipped with 456", expression: "\\d+" } },
  "tools/chart": { tool: "line_chart", parameters: { data: "1;3;2", x_axis: "a;b;c" } },
};
const STARTUP_PROBE = "tools/regex";

// ---------------------------------------------------------------------------------------------
// Options

interface Options {
  pluginsDir: string;
  plugins: string[];
  points: number[];
  /** Rounds at each point (the last number repeats for later points). */
  rounds: number[];
  idleTimeoutS: number;
  keepWarm: boolean;
  keepWarmMaxN: number;
  upstream: boolean;
  daemonSrc?: string;
  daemonCommit?: string;
  pluginsCommit?: string;
  oursRef: string;
  out: string;
  append: boolean;
  memorySamples: number;
  settleS: number;
  installTimeoutMin: number;
  startTimeoutS: number;
  hardCapMin: number;
  keepWork: boolean;
  summarizeOnly: boolean;
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
const numberList = (value: string): number[] => commaList(value).map(positiveNumber);

function parseOptions(argv: string[]): Options {
  const program = new Command("idle-plugins")
    .description("Memory, start-up and first call after idle with N installed official plugins, ours beside upstream")
    .option(
      "--plugins-dir <dir>",
      "an exported tree of langgenius/dify-official-plugins (tools/, models/, …); required",
    )
    .option("--summarize-only", "recompute the summary of the results file and print its table; nothing is run", false)
    .option(
      "--plugins <list>",
      "comma-separated plugin paths, in install order (tools/regex first: it is the start-up probe)",
      commaList,
      DEFAULT_PLUGINS.slice(0, 40),
    )
    .option("--points <list>", "numbers of installed plugins to measure at", numberList, [1, 10, 40])
    .option(
      "--rounds <list>",
      "measurement rounds at each point: one number, or one per point (the last repeats)",
      numberList,
      [2],
    )
    .option(
      "--idle-timeout-s <n>",
      "our PLUGIN_IDLE_TIMEOUT for the run (the daemon's default is 600)",
      positiveNumber,
      20,
    )
    .option("--no-keep-warm", "skip the variant of ours with every plugin in PLUGIN_KEEP_WARM")
    .option("--keep-warm-max-n <n>", "run the keep-warm variant only at points up to this N", positiveNumber, 1e9)
    .option("--no-upstream", "ours only")
    .option("--daemon-src <dir>", "a langgenius/dify-plugin-daemon tree (default: $DIFY_PLUGIN_DAEMON_SRC)")
    .option("--daemon-commit <sha>", "commit of the daemon tree, recorded in the results (when not a git checkout)")
    .option("--plugins-commit <sha>", "commit of the plugins tree (recorded; also keys the package cache)")
    .option(
      "--ours-ref <ref>",
      "git ref of this repository whose local daemon is measured (built from a clean export)",
      "HEAD",
    )
    .option("--out <file>", "results file", join(resultsDir, "idle-plugins.json"))
    .option("--append", "keep the runs already in the results file", false)
    .option(
      "--memory-samples <n>",
      "memory readings (1 s apart) per measurement; the median is kept",
      positiveNumber,
      5,
    )
    .option(
      "--settle-s <n>",
      "seconds of quiet after a daemon has started everything, before memory is read",
      positiveNumber,
      5,
    )
    .option("--install-timeout-min <n>", "minutes one install may take", positiveNumber, 15)
    .option(
      "--start-timeout-s <n>",
      "seconds a start-up (health, first call, all plugins running) may take",
      positiveNumber,
      300,
    )
    .option("--hard-cap-min <n>", "the whole run stops after this many minutes", positiveNumber, 150)
    .option("--keep-work", "keep the temporary directories (logs, data) for a post-mortem", false)
    .parse(argv, { from: "user" });
  const o = program.opts<Omit<Options, "pluginsDir" | "out"> & { pluginsDir: string; out: string }>();
  const points = [...new Set(o.points.map((n) => Math.min(Math.round(n), o.plugins.length)))].sort((a, b) => a - b);
  return {
    ...o,
    points,
    rounds: o.rounds.map((r) => Math.round(r)),
    memorySamples: Math.round(o.memorySamples),
    pluginsDir: resolve(o.pluginsDir ?? "."),
    daemonSrc: o.daemonSrc ?? process.env.DIFY_PLUGIN_DAEMON_SRC,
    out: resolve(o.out),
  };
}

const log = (line: string) =>
  process.stderr.write(`[idle-plugins ${new Date().toISOString().slice(11, 19)}] ${line}\n`);

// ---------------------------------------------------------------------------------------------
// Our daemon, built once from a clean export of a commit (others may be editing the work tree)

async function buildOurs(ref: string, work: string): Promise<{ nodeArgs: string[]; commit: string; dir: string }> {
  const commit = execFileSync("git", ["rev-parse", ref], { cwd: repoRoot, encoding: "utf8" }).trim();
  const dir = join(work, `ours-${commit.slice(0, 12)}`);
  mkdirSync(dir, { recursive: true });
  execFileSync("sh", ["-c", `git archive ${commit} | tar -x -C "${dir}"`], { cwd: repoRoot, timeout: 120_000 });
  symlinkSync(join(repoRoot, "node_modules"), join(dir, "node_modules"));
  const out = execFileSync(
    process.execPath,
    [join(dir, "scripts", "build-local.mjs"), "--out-dir", join(dir, "dist")],
    {
      cwd: dir,
      encoding: "utf8",
      timeout: 300_000,
    },
  );
  // Its node options, then the entry: run exactly as npm start runs that commit.
  return { nodeArgs: out.trim().split("\n"), commit, dir };
}

// ---------------------------------------------------------------------------------------------
// Process trees

const mib = (bytes: number) => round(bytes / MiB, 1);

/** Installed plugins (by checksum) with a running process under the daemon, from one reading of /proc. */
function runningPlugins(d: RunningDaemon, uids: string[]): number {
  const wanted = new Set(uids.map(checksumOf).filter(Boolean));
  const seen = new Set<string>();
  for (const s of processTree(d.rootPid)) {
    if (!s.comm.startsWith("python")) continue;
    const cwd = cwdOf(s.pid);
    for (const c of wanted) if (cwd.includes(c)) seen.add(c);
  }
  return seen.size;
}

interface MemoryReading {
  /** The daemon's own processes (node, or the Go server; everything in its tree but Python). */
  daemonRssMiB: number;
  daemonPssMiB: number;
  /** All Python processes in the daemon's tree (the plugins). */
  pluginRssMiB: number;
  pluginPssMiB: number;
  pluginProcesses: number;
  runningPlugins: number;
  totalRssMiB: number;
  totalPssMiB: number;
  /** Upstream only: PostgreSQL (postmaster and backends) and Redis, which it needs to run. */
  servicesRssMiB?: number;
  servicesPssMiB?: number;
  totalWithServicesRssMiB?: number;
  totalWithServicesPssMiB?: number;
}

function readMemory(d: RunningDaemon, uids: string[], services: number[] = []): MemoryReading {
  let dRss = 0;
  let dPss = 0;
  let pRss = 0;
  let pPss = 0;
  let pN = 0;
  for (const s of processTree(d.rootPid)) {
    const rss = rssBytes(s.pid) ?? 0;
    const pss = pssBytes(s.pid) ?? 0;
    if (s.comm.startsWith("python")) {
      pRss += rss;
      pPss += pss;
      pN += 1;
    } else {
      dRss += rss;
      dPss += pss;
    }
  }
  const r: MemoryReading = {
    daemonRssMiB: mib(dRss),
    daemonPssMiB: mib(dPss),
    pluginRssMiB: mib(pRss),
    pluginPssMiB: mib(pPss),
    pluginProcesses: pN,
    runningPlugins: runningPlugins(d, uids),
    totalRssMiB: mib(dRss + pRss),
    totalPssMiB: mib(dPss + pPss),
  };
  if (services.length) {
    let sRss = 0;
    let sPss = 0;
    for (const root of services)
      for (const s of processTree(root)) {
        sRss += rssBytes(s.pid) ?? 0;
        sPss += pssBytes(s.pid) ?? 0;
      }
    Object.assign(r, {
      servicesRssMiB: mib(sRss),
      servicesPssMiB: mib(sPss),
      totalWithServicesRssMiB: mib(dRss + pRss + sRss),
      totalWithServicesPssMiB: mib(dPss + pPss + sPss),
    });
  }
  return r;
}

/** `samples` readings of every daemon at once, 1 s apart; per daemon, the median of each field. */
async function sampleMemory(
  targets: Array<{ d: RunningDaemon; uids: string[]; services?: number[] }>,
  samples: number,
): Promise<Array<MemoryReading & { samples: number; totalPssMinMiB: number; totalPssMaxMiB: number }>> {
  const readings: MemoryReading[][] = targets.map(() => []);
  for (let i = 0; i < samples; i++) {
    if (i) await sleep(1000);
    targets.forEach((t, k) => readings[k]?.push(readMemory(t.d, t.uids, t.services)));
  }
  return readings.map((rs) => {
    const first = rs[0] as MemoryReading;
    const out = {} as Record<string, number>;
    for (const key of Object.keys(first) as Array<keyof MemoryReading>)
      out[key] = median(rs.map((r) => r[key] as number));
    const totals = rs.map((r) => r.totalPssMiB);
    return {
      ...(out as unknown as MemoryReading),
      samples: rs.length,
      totalPssMinMiB: Math.min(...totals),
      totalPssMaxMiB: Math.max(...totals),
    };
  });
}

async function until<T>(fn: () => T | undefined, timeoutMs: number, intervalMs: number): Promise<T | undefined> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (performance.now() > deadline) return undefined;
    await sleep(intervalMs);
  }
}

// ---------------------------------------------------------------------------------------------
// Measurements

interface Installed {
  info: PluginInfo;
  ours?: string;
  upstream?: string;
}

interface StartupResult {
  /** Spawn → /health/check answers. */
  healthMs: number;
  /** Spawn → the start-up probe's call is answered (calls repeated every 50 ms until then). */
  firstCallMs?: number;
  firstCall?: Pick<CallResult, "outcome" | "detail">;
  attempts: number;
  /** Spawn → every installed plugin has a process (upstream; ours with all kept warm). */
  allRunningMs?: number;
  runningAtFirstCall: number;
  load: LoadWindow;
}

function targetFor(name: Target["name"], d: RunningDaemon, p: Installed): Target | undefined {
  const uid = name === "ours" ? p.ours : p.upstream;
  return uid ? { name, daemon: d, pluginId: p.info.pluginId, uniqueIdentifier: uid } : undefined;
}

function probeFor(info: PluginInfo): Probe | undefined {
  const call = PROBE_CALLS[info.path];
  if (!call) return undefined;
  return dispatchProbe(
    "tool/invoke",
    {
      provider: info.provider,
      tool: call.tool,
      credentials: {},
      credential_type: "unauthorized",
      tool_parameters: call.parameters,
    },
    `tool/invoke ${call.tool}`,
  );
}

/** After a (re)start: first answered call of the probe, then (optionally) until all plugins run. */
async function timeStartup(
  d: RunningDaemon,
  name: Target["name"],
  probePlugin: Installed,
  uids: string[],
  waitAll: boolean,
  o: Options,
  window: ReturnType<LoadSampler["window"]>,
): Promise<StartupResult> {
  const healthMs = round(d.healthyAtMs - d.spawnedAtMs, 0);
  const probe = probeFor(probePlugin.info);
  const t = targetFor(name, d, probePlugin);
  const deadline = d.spawnedAtMs + o.startTimeoutS * 1000;
  let attempts = 0;
  let last: CallResult | undefined;
  let firstCallMs: number | undefined;
  if (probe && t) {
    while (performance.now() < deadline) {
      attempts += 1;
      last = await probe.call(t, Math.min(60_000, Math.max(1000, deadline - performance.now())));
      if (!last.answered && (attempts <= 3 || attempts % 50 === 0))
        log(`  ${name} start-up call ${attempts}: ${last.outcome} after ${last.ms} ms: ${clip(last.detail, 300)}`);
      if (last.answered) {
        firstCallMs = round(performance.now() - d.spawnedAtMs, 0);
        break;
      }
      await sleep(50);
    }
  }
  const runningAtFirstCall = runningPlugins(d, uids);
  let allRunningMs: number | undefined;
  if (waitAll) {
    const at = await until(
      () => (runningPlugins(d, uids) >= uids.length ? performance.now() : undefined),
      Math.max(0, deadline - performance.now()),
      200,
    );
    allRunningMs = at === undefined ? undefined : round(at - d.spawnedAtMs, 0);
  }
  return {
    healthMs,
    firstCallMs,
    firstCall: last ? { outcome: last.outcome, detail: clip(last.detail, 200) } : undefined,
    attempts,
    allRunningMs,
    runningAtFirstCall,
    load: window.end(),
  };
}

interface AfterIdleCall {
  plugin: string;
  ours?: { stoppedBefore: boolean; firstMs?: number; firstOutcome?: string; secondMs?: number };
  upstream?: { runningBefore: boolean; firstMs?: number; firstOutcome?: string; secondMs?: number };
}

async function callTwice(
  t: Target,
  probe: Probe,
): Promise<{ firstMs?: number; firstOutcome?: string; secondMs?: number }> {
  const first = await probe.call(t, 120_000);
  const second = first.answered ? await probe.call(t, 120_000) : undefined;
  return {
    firstMs: first.answered ? first.ms : undefined,
    firstOutcome: first.answered ? first.outcome : `${first.outcome}: ${clip(first.detail, 200)}`,
    secondMs: second?.answered ? second.ms : undefined,
  };
}

// ---------------------------------------------------------------------------------------------
// Main

interface RoundResult {
  round: number;
  order: string[];
  startedAt: string;
  startup: { ours?: StartupResult; upstream?: StartupResult; oursKeepWarm?: StartupResult };
  /** Ours: the start-up call's plugin stopped this long after that call (idle timeout + watchdog). */
  idleStopMs?: number;
  idleStopObserved: boolean;
  memoryIdle: { ours?: MemoryReading; upstream?: MemoryReading; load: LoadWindow };
  afterIdle: { idleSeconds: number; calls: AfterIdleCall[]; load: LoadWindow };
  memoryAllRunning?: { oursKeepWarm?: MemoryReading; upstream?: MemoryReading; load: LoadWindow };
  /** Ours with every plugin kept warm did not answer its health check (the message). */
  keepWarmError?: string;
  load: LoadWindow;
}

interface PointResult {
  n: number;
  installed: { ours: number; upstream: number };
  rounds: RoundResult[];
}

async function main(o: Options): Promise<void> {
  const startedAt = new Date();
  const work = mkdtempSync(join(tmpdir(), "bench-idle-plugins-"));
  const logDir = join(work, "logs");
  mkdirSync(logDir, { recursive: true });
  const toolchain = await resolveToolchain(log);
  log(`Python ${toolchain.pythonVersion} (${toolchain.python}), uv ${toolchain.uv}`);

  const src = o.daemonSrc ? { dir: o.daemonSrc } : goSource();
  if (!src.dir) throw new Error(`upstream's packager is needed: pass --daemon-src (${src.reason ?? ""})`);
  const goBuild = await buildGoDaemon(src.dir, log);
  const ours = await buildOurs(o.oursRef, work);
  log(`ours: ${o.oursRef} = ${ours.commit.slice(0, 12)}, run as node ${ours.nodeArgs.join(" ")}`);

  const infos = o.plugins.map((p) => describePlugin(o.pluginsDir, p));
  const probePlugins = Object.keys(PROBE_CALLS);
  if (o.plugins[0] !== STARTUP_PROBE)
    throw new Error(`--plugins must start with ${STARTUP_PROBE} (the start-up probe)`);

  // Packages, cached per plugins commit (packing 40 takes minutes).
  const packages = new Map<string, string>();
  for (const info of infos) {
    const file = packageFile(info.path, o.pluginsCommit, join(work, "packages"));
    if (!existsSync(file)) {
      const r = await pack(goBuild.commandline, dirname(toolchain.uv), join(o.pluginsDir, info.path), file);
      if (!r.ok) {
        log(`packing ${info.path} failed: ${clip(r.message, 300)}`);
        continue;
      }
      log(`packed ${info.path} (${r.seconds}s)`);
    }
    packages.set(info.path, file);
  }

  let our: RunningDaemon | undefined;
  let up: RunningGoDaemon | undefined;
  let goWork: string | undefined;
  const sampler = startLoadSampler(() => up?.servicePids() ?? []);
  const runLoad = sampler.window("whole run");
  const oursData = mkdtempSync(join(tmpdir(), "bench-idle-ours-"));
  const ourEnv = (keepWarm: string[]) => ({
    PLUGIN_IDLE_TIMEOUT: String(o.idleTimeoutS),
    PLUGIN_KEEP_WARM: keepWarm.join(","),
  });
  const startOurs = async (keepWarm: string[]) => {
    await our?.stop();
    our = undefined;
    our = await startOurDaemon({
      mode: "bundle",
      bundleCommand: ours.nodeArgs,
      key: KEY,
      python: toolchain.python,
      uv: toolchain.uv,
      dataDir: oursData,
      logDir,
      env: ourEnv(keepWarm),
      healthPollMs: 20,
      healthTimeoutMs: o.startTimeoutS * 1000,
    });
    return our;
  };
  await startOurs([]);
  log(`ours on ${our?.baseUrl}, DATA_DIR ${oursData}, PLUGIN_IDLE_TIMEOUT=${o.idleTimeoutS}`);
  let upstreamError: string | undefined;
  if (o.upstream) {
    const started = await startUpstreamBeside(
      { build: goBuild, key: KEY, python: toolchain.python, uv: toolchain.uv, workPrefix: "bench-idle-go-" },
      log,
    );
    ({ daemon: up, workDir: goWork, error: upstreamError } = started);
    if (up) log(`upstream: ${up.describe} on ${up.baseUrl}`);
    else log(`upstream did not start: ${upstreamError}`);
  }

  const installed: Installed[] = [];
  const installs: Array<{ plugin: string; ours?: InstallResult; upstream?: InstallResult }> = [];
  const points: PointResult[] = [];
  const loadAtStart = loadavg().map((l) => round(l, 2));

  const scrubbers: Array<[string, string]> = [
    [oursData, "<ours DATA_DIR>"],
    [work, "<work>"],
    [o.pluginsDir, "<plugins>"],
    [process.env.HOME ?? "/nonexistent-home", "~"],
  ];
  if (goWork) scrubbers.unshift([goWork, "<upstream work>"]);
  const tempDirs = new RegExp(`${tmpdir().replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/bench-[^/"\\s…]*`, "g");
  const scrub = (text: string) =>
    scrubbers
      .reduce((t, [from, to]) => (from.length > 1 ? t.split(from).join(to) : t), text)
      .replace(tempDirs, "<tmp>");

  const runDoc = () => ({
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? "",
      memoryGiB: round(totalmem() / 1024 ** 3, 1),
      node: process.version,
      loadAverageAtStart: loadAtStart,
      loadAverageNow: loadavg().map((l) => round(l, 2)),
    },
    sources: {
      ours: ours.commit,
      upstream: o.daemonCommit ?? (goBuild.commit !== "unknown" ? goBuild.commit : null),
      goVersion: goBuild.goVersion,
      officialPlugins: o.pluginsCommit ?? null,
      python: toolchain.pythonVersion,
    },
    config: {
      idleTimeoutS: o.idleTimeoutS,
      points: o.points,
      rounds: o.rounds,
      plugins: o.plugins,
      memorySamples: o.memorySamples,
      settleS: o.settleS,
      ours: `node <bundle of ${ours.commit.slice(0, 12)}> (scripts/build-local.mjs, as npm start), STORE_BACKEND=local, PLUGIN_IDLE_TIMEOUT=${o.idleTimeoutS}`,
      upstream: up ? up.describe : (upstreamError ?? null),
    },
    installs,
    points,
  });
  // Runs already in the file (read once: every write replaces this run's entry).
  const previous =
    o.append && existsSync(o.out) ? ((JSON.parse(readFileSync(o.out, "utf8")) as { runs?: unknown[] }).runs ?? []) : [];
  const write = () => {
    const runs = [...previous, runDoc()];
    const doc = { generatedAt: new Date().toISOString(), method: METHOD, summary: summarize(runs as RunDoc[]), runs };
    mkdirSync(dirname(o.out), { recursive: true });
    writeFileSync(o.out, `${JSON.stringify(doc, (_k, v: unknown) => (typeof v === "string" ? scrub(v) : v), 2)}\n`);
  };

  for (const [pi, n] of o.points.entries()) {
    // Install up to n (both daemons at once, one plugin at a time); ours runs lazily meanwhile.
    const installWindow = sampler.window(`install up to ${n}`);
    for (const info of infos.slice(installed.length, n)) {
      const file = packages.get(info.path);
      const entry: Installed = { info };
      installed.push(entry);
      if (!file) continue;
      const pkg = readFileSync(file);
      const [ro, ru] = await Promise.all([
        install({ daemon: our as RunningDaemon }, pkg, o.installTimeoutMin * 60_000),
        up ? install({ daemon: up }, pkg, o.installTimeoutMin * 60_000) : Promise.resolve(undefined),
      ]);
      if (ro.ok) entry.ours = ro.uniqueIdentifier;
      if (ru?.ok) entry.upstream = ru.uniqueIdentifier;
      installs.push({ plugin: info.path, ours: ro, upstream: ru });
      log(
        `installed ${installed.length}/${n} ${info.path}: ours ${ro.ok ? `${ro.seconds}s` : `FAILED ${clip(ro.message, 200)}`}${ru ? `, upstream ${ru.ok ? `${ru.seconds}s` : `FAILED ${clip(ru.message, 200)}`}` : ""}`,
      );
    }
    const installLoad = installWindow.end();
    const ourUids = installed.flatMap((p) => (p.ours ? [p.ours] : []));
    const upUids = installed.flatMap((p) => (p.upstream ? [p.upstream] : []));
    const keepWarmIds = installed.filter((p) => p.ours).map((p) => p.info.pluginId);
    const point: PointResult = { n, installed: { ours: ourUids.length, upstream: upUids.length }, rounds: [] };
    points.push(point);
    log(
      `N=${n}: ${ourUids.length} installed in ours, ${upUids.length} in upstream (install phase: other CPU ${installLoad.otherCores} cores)`,
    );
    const probe = installed.find((p) => p.info.path === STARTUP_PROBE) as Installed;

    const rounds = o.rounds[Math.min(pi, o.rounds.length - 1)] ?? 1;
    for (let r = 0; r < rounds; r++) {
      const roundWindow = sampler.window(`N=${n} round ${r + 1}`);
      const order: Array<"ours" | "upstream"> = (r + pi) % 2 === 0 ? ["ours", "upstream"] : ["upstream", "ours"];
      const round_: RoundResult = {
        round: r + 1,
        order: up ? order : ["ours"],
        startedAt: new Date().toISOString(),
        startup: {},
        idleStopObserved: false,
        memoryIdle: {} as RoundResult["memoryIdle"],
        afterIdle: {} as RoundResult["afterIdle"],
        load: undefined as unknown as LoadWindow,
      };
      point.rounds.push(round_);
      // 1. Start-up of each daemon on its data, one at a time (the other idle).
      let lastOurCallAt = 0;
      for (const which of round_.order) {
        if (which === "ours") {
          await our?.stop();
          our = undefined;
          const w = sampler.window(`N=${n} r${r + 1} ours start-up`);
          const d = await startOurs([]);
          round_.startup.ours = await timeStartup(d, "ours", probe, ourUids, false, o, w);
          lastOurCallAt = performance.now();
          log(
            `N=${n} r${r + 1} ours: health ${round_.startup.ours.healthMs} ms, first call ${round_.startup.ours.firstCallMs ?? "NONE"} ms (${round_.startup.ours.runningAtFirstCall} running), other CPU ${round_.startup.ours.load.otherCores}`,
          );
        } else if (up) {
          const w = sampler.window(`N=${n} r${r + 1} upstream start-up`);
          up = await up.restart({ healthPollMs: 20 });
          round_.startup.upstream = await timeStartup(up, "upstream", probe, upUids, true, o, w);
          log(
            `N=${n} r${r + 1} upstream: health ${round_.startup.upstream.healthMs} ms, first call ${round_.startup.upstream.firstCallMs ?? "NONE"} ms (${round_.startup.upstream.runningAtFirstCall} running), all ${upUids.length} running ${round_.startup.upstream.allRunningMs ?? "NOT"} ms, other CPU ${round_.startup.upstream.load.otherCores}`,
          );
          await sleep(o.settleS * 1000);
        }
      }
      // 2. Ours stops the woken plugin after the idle timeout.
      const ourD = our as RunningDaemon;
      const stoppedAt = await until(
        () => (runningPlugins(ourD, ourUids) === 0 ? performance.now() : undefined),
        (o.idleTimeoutS + 60) * 1000,
        100,
      );
      round_.idleStopObserved = stoppedAt !== undefined;
      round_.idleStopMs = stoppedAt === undefined ? undefined : round(stoppedAt - lastOurCallAt, 0);
      log(
        `N=${n} r${r + 1} ours: idle stop ${stoppedAt === undefined ? "NOT OBSERVED" : `${round_.idleStopMs} ms after the call`}`,
      );
      await sleep(o.settleS * 1000);
      // 3. Idle memory, both at once.
      {
        const w = sampler.window(`N=${n} r${r + 1} idle memory`);
        const targets = [
          { d: ourD, uids: ourUids },
          ...(up ? [{ d: up, uids: upUids, services: up.servicePids() }] : []),
        ];
        const [mo, mu] = await sampleMemory(targets, o.memorySamples);
        round_.memoryIdle = { ours: mo, upstream: mu, load: w.end() };
        log(
          `N=${n} r${r + 1} idle memory PSS/RSS MiB: ours ${mo?.totalPssMiB}/${mo?.totalRssMiB} (${mo?.pluginProcesses} python), upstream ${mu?.totalPssMiB ?? "-"}/${mu?.totalRssMiB ?? "-"} (${mu?.pluginProcesses ?? "-"} python; + services ${mu?.servicesPssMiB ?? "-"} PSS)`,
        );
      }
      // 4. First call after idle (ours: the plugin was stopped; upstream: it kept running), then warm.
      {
        const w = sampler.window(`N=${n} r${r + 1} calls after idle`);
        const calls: AfterIdleCall[] = [];
        const idleSeconds = round((performance.now() - lastOurCallAt) / 1000, 0);
        for (const path of probePlugins) {
          const p = installed.find((x) => x.info.path === path);
          const pr = p && probeFor(p.info);
          if (!p || !pr) continue;
          const c: AfterIdleCall = { plugin: path };
          const to = targetFor("ours", ourD, p);
          if (to) {
            const stoppedBefore = pluginPids(ourD, to.uniqueIdentifier).length === 0;
            c.ours = { stoppedBefore, ...(await callTwice(to, pr)) };
          }
          const tu = up && targetFor("upstream", up, p);
          if (tu && up) {
            const runningBefore = pluginPids(up, tu.uniqueIdentifier).length > 0;
            c.upstream = { runningBefore, ...(await callTwice(tu, pr)) };
          }
          calls.push(c);
          log(
            `N=${n} r${r + 1} ${path} after ${idleSeconds}s idle: ours ${c.ours?.firstMs ?? c.ours?.firstOutcome} ms (stopped before: ${c.ours?.stoppedBefore}), then ${c.ours?.secondMs} ms; upstream ${c.upstream?.firstMs ?? c.upstream?.firstOutcome ?? "-"} ms, then ${c.upstream?.secondMs ?? "-"} ms`,
          );
        }
        round_.afterIdle = { idleSeconds, calls, load: w.end() };
        write();
      }
      // 5. Ours with every plugin kept warm: start-up until all run, and memory beside upstream's.
      if (o.keepWarm && n <= o.keepWarmMaxN) {
        await our?.stop();
        our = undefined;
        const w = sampler.window(`N=${n} r${r + 1} ours keep-warm start-up`);
        const spawned = performance.now();
        const d = await startOurs(keepWarmIds).catch((err: Error) => {
          round_.keepWarmError = `${clip(err.message, 300)} (after ${round((performance.now() - spawned) / 1000, 0)} s)`;
          return undefined;
        });
        if (!d) {
          w.end();
          log(`N=${n} r${r + 1} ours, all kept warm: DID NOT START: ${round_.keepWarmError}`);
          await startOurs([]);
          round_.load = roundWindow.end();
          write();
          continue;
        }
        round_.startup.oursKeepWarm = await timeStartup(d, "ours", probe, ourUids, true, o, w);
        log(
          `N=${n} r${r + 1} ours, all kept warm: health ${round_.startup.oursKeepWarm.healthMs} ms, first call ${round_.startup.oursKeepWarm.firstCallMs ?? "NONE"} ms, all ${ourUids.length} running ${round_.startup.oursKeepWarm.allRunningMs ?? "NOT"} ms`,
        );
        await sleep(o.settleS * 1000);
        const mw = sampler.window(`N=${n} r${r + 1} all-running memory`);
        const targets = [{ d, uids: ourUids }, ...(up ? [{ d: up, uids: upUids, services: up.servicePids() }] : [])];
        const [mo, mu] = await sampleMemory(targets, o.memorySamples);
        round_.memoryAllRunning = { oursKeepWarm: mo, upstream: mu, load: mw.end() };
        log(
          `N=${n} r${r + 1} all running, PSS/RSS MiB: ours ${mo?.totalPssMiB}/${mo?.totalRssMiB} (${mo?.runningPlugins} plugins), upstream ${mu?.totalPssMiB ?? "-"}/${mu?.totalRssMiB ?? "-"} (${mu?.runningPlugins ?? "-"} plugins)`,
        );
        await startOurs([]);
      }
      round_.load = roundWindow.end();
      log(
        `N=${n} r${r + 1}: other CPU ${round_.load.otherCores} cores (max ${round_.load.otherCoresMax}), load ${round_.load.loadAverage1Start}→${round_.load.loadAverage1End}`,
      );
      write();
    }
  }
  const whole = runLoad.end();
  log(`run done: other CPU ${whole.otherCores} cores over ${whole.seconds}s`);
  write();
  sampler.stop();
  const doc = JSON.parse(readFileSync(o.out, "utf8")) as { runs: RunDoc[] };
  process.stdout.write(`\n${table(doc.runs)}\nresults: ${o.out}\n`);

  await our?.stop();
  await up?.stop();
  if (o.keepWork) log(`kept: ${work}, ${oursData}${goWork ? `, ${goWork}` : ""}`);
  else for (const dir of [work, oursData, goWork]) if (dir) rmSync(dir, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------
// Summary over all runs in the file

const METHOD = {
  startup:
    "each daemon stopped (SIGTERM) and started again on the same data; healthMs = spawn → GET /health/check answers (polled every 20 ms); firstCallMs = spawn → tools/regex regex_extract answered (repeated every 50 ms while the daemon answers an error); allRunningMs = spawn → every installed plugin has a Python process",
  memoryIdle:
    "after the start-up call's plugin has been stopped by our idle timeout (upstream: all plugins running, idle): median of N readings 1 s apart of VmRSS and Pss (smaps_rollup) summed over the daemon's process tree; Python processes are the plugins; upstream's PostgreSQL + Redis apart (services*)",
  afterIdle:
    "the first call to a plugin after the idle period (ours: its process was stopped, so this includes starting it), then the same call again",
  keepWarm: "ours restarted with every installed plugin in PLUGIN_KEEP_WARM: started with the daemon and never stopped",
  load: "machine busy CPU (/proc/stat) minus the CPU of the benchmark's processes (this script's descendants and upstream's PostgreSQL), in cores, over each phase; load average at both ends",
};

interface RunDoc {
  startedAt: string;
  config: { idleTimeoutS: number };
  points: PointResult[];
}

type Getter = (r: RoundResult) => number | undefined;
const MEASURES: Array<{ name: string; unit: string; ours: Getter; upstream: Getter }> = [
  {
    name: "idle memory, total PSS (daemon + plugins)",
    unit: "MiB",
    ours: (r) => r.memoryIdle.ours?.totalPssMiB,
    upstream: (r) => r.memoryIdle.upstream?.totalPssMiB,
  },
  {
    name: "idle memory, total RSS (daemon + plugins)",
    unit: "MiB",
    ours: (r) => r.memoryIdle.ours?.totalRssMiB,
    upstream: (r) => r.memoryIdle.upstream?.totalRssMiB,
  },
  {
    name: "idle memory, PSS incl. upstream's PostgreSQL + Redis",
    unit: "MiB",
    ours: (r) => r.memoryIdle.ours?.totalPssMiB,
    upstream: (r) => r.memoryIdle.upstream?.totalWithServicesPssMiB,
  },
  {
    name: "plugin processes while idle",
    unit: "",
    ours: (r) => r.memoryIdle.ours?.pluginProcesses,
    upstream: (r) => r.memoryIdle.upstream?.pluginProcesses,
  },
  {
    name: "all running: total PSS (ours all kept warm)",
    unit: "MiB",
    ours: (r) => r.memoryAllRunning?.oursKeepWarm?.totalPssMiB,
    upstream: (r) => r.memoryAllRunning?.upstream?.totalPssMiB,
  },
  {
    name: "all running: total RSS (ours all kept warm)",
    unit: "MiB",
    ours: (r) => r.memoryAllRunning?.oursKeepWarm?.totalRssMiB,
    upstream: (r) => r.memoryAllRunning?.upstream?.totalRssMiB,
  },
  {
    name: "start-up: spawn → health",
    unit: "ms",
    ours: (r) => r.startup.ours?.healthMs,
    upstream: (r) => r.startup.upstream?.healthMs,
  },
  {
    name: "start-up: spawn → first call answered",
    unit: "ms",
    ours: (r) => r.startup.ours?.firstCallMs,
    upstream: (r) => r.startup.upstream?.firstCallMs,
  },
  {
    name: "start-up, ours all kept warm: spawn → health",
    unit: "ms",
    ours: (r) => r.startup.oursKeepWarm?.healthMs,
    upstream: (r) => r.startup.upstream?.healthMs,
  },
  {
    name: "start-up, ours all kept warm: spawn → first call",
    unit: "ms",
    ours: (r) => r.startup.oursKeepWarm?.firstCallMs,
    upstream: (r) => r.startup.upstream?.firstCallMs,
  },
  {
    name: "start-up, ours all kept warm: spawn → all plugins running",
    unit: "ms",
    ours: (r) => r.startup.oursKeepWarm?.allRunningMs,
    upstream: (r) => r.startup.upstream?.allRunningMs,
  },
  ...["tools/regex", "tools/chart"].flatMap((plugin) => {
    const c = (r: RoundResult) => r.afterIdle.calls?.find((x) => x.plugin === plugin);
    return [
      {
        name: `${plugin}: first call after idle`,
        unit: "ms",
        ours: (r: RoundResult) => c(r)?.ours?.firstMs,
        upstream: (r: RoundResult) => c(r)?.upstream?.firstMs,
      },
      {
        name: `${plugin}: the call after that (warm)`,
        unit: "ms",
        ours: (r: RoundResult) => c(r)?.ours?.secondMs,
        upstream: (r: RoundResult) => c(r)?.upstream?.secondMs,
      },
    ];
  }),
];

const spread = (xs: number[]) =>
  xs.length ? { median: round(median(xs), 1), min: Math.min(...xs), max: Math.max(...xs), n: xs.length } : undefined;

function summarize(runs: RunDoc[]) {
  const ns = [...new Set(runs.flatMap((r) => r.points.map((p) => p.n)))].sort((a, b) => a - b);
  return ns.map((n) => {
    const rounds = runs.flatMap((run) => run.points.filter((p) => p.n === n).flatMap((p) => p.rounds));
    const otherCpu = rounds.map((r) => r.load?.otherCores).filter((x): x is number => x !== undefined);
    return {
      n,
      rounds: rounds.length,
      otherCpuCores: spread(otherCpu),
      measures: MEASURES.map((m) => {
        const ours = spread(rounds.map(m.ours).filter((x): x is number => x !== undefined));
        const upstream = spread(rounds.map(m.upstream).filter((x): x is number => x !== undefined));
        return {
          measure: m.name,
          unit: m.unit,
          ours,
          upstream,
          ratio: ours && upstream && upstream.median > 0 ? round(ours.median / upstream.median, 2) : null,
        };
      }),
    };
  });
}

function markdown(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cols: string[]) => `| ${cols.map((c, i) => c.padEnd(widths[i] ?? 0)).join(" | ")} |`;
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

function table(runs: RunDoc[]): string {
  const fmt = (s: ReturnType<typeof spread>) => (s ? `${s.median} (${s.min}–${s.max}, n=${s.n})` : "-");
  const parts: string[] = [];
  for (const p of summarize(runs)) {
    parts.push(`N = ${p.n} installed (${p.rounds} rounds; other processes' CPU ${fmt(p.otherCpuCores)} cores)`);
    parts.push(
      markdown(
        ["measure", "ours median (min–max)", "upstream median (min–max)", "ours/upstream"],
        p.measures.map((m) => [
          `${m.measure}${m.unit ? ` [${m.unit}]` : ""}`,
          fmt(m.ours),
          fmt(m.upstream),
          m.ratio === null ? "-" : String(m.ratio),
        ]),
      ),
      "",
    );
  }
  const perRound: string[][] = [];
  for (const [ri, run] of runs.entries())
    for (const p of run.points)
      for (const r of p.rounds) {
        const regex = r.afterIdle.calls?.find((c) => c.plugin === "tools/regex");
        perRound.push([
          `${ri + 1}`,
          String(p.n),
          String(r.round),
          `${r.load?.otherCores ?? "-"} (max ${r.load?.otherCoresMax ?? "-"})`,
          `${r.load?.loadAverage1Start ?? "-"}→${r.load?.loadAverage1End ?? "-"}`,
          `${r.memoryIdle.ours?.totalPssMiB ?? "-"} / ${r.memoryIdle.upstream?.totalPssMiB ?? "-"}`,
          `${r.startup.ours?.healthMs ?? "-"} / ${r.startup.upstream?.healthMs ?? "-"}`,
          `${r.startup.ours?.firstCallMs ?? "-"} / ${r.startup.upstream?.firstCallMs ?? "-"}`,
          `${r.startup.upstream?.allRunningMs ?? "-"} / ${r.startup.oursKeepWarm?.allRunningMs ?? "-"}`,
          `${regex?.ours?.firstMs ?? "-"} / ${regex?.upstream?.firstMs ?? "-"}`,
          `${r.memoryAllRunning?.oursKeepWarm?.totalPssMiB ?? "-"} / ${r.memoryAllRunning?.upstream?.totalPssMiB ?? "-"}`,
        ]);
      }
  parts.push(
    "Per round (ours / upstream):",
    markdown(
      [
        "run",
        "N",
        "round",
        "other CPU cores",
        "load1",
        "idle PSS MiB",
        "health ms",
        "first call ms",
        "all running ms (upstream / ours warm)",
        "regex after idle ms",
        "all-running PSS MiB (ours warm / upstream)",
      ],
      perRound,
    ),
  );
  return parts.join("\n");
}

// ---------------------------------------------------------------------------------------------

await runBenchmark(log, async (hardCap) => {
  const options = parseOptions(process.argv.slice(2));
  if (options.summarizeOnly) {
    const doc = JSON.parse(readFileSync(options.out, "utf8")) as { summary: unknown; runs: RunDoc[] };
    doc.summary = summarize(doc.runs);
    writeFileSync(options.out, `${JSON.stringify(doc, null, 2)}\n`);
    process.stdout.write(`${table(doc.runs)}\n`);
    return;
  }
  if (!process.argv.includes("--plugins-dir")) throw new Error("--plugins-dir is required");
  hardCap(options.hardCapMin);
  await main(options);
});
