/**
 * `npm run bench`: the local daemon side by side with the upstream Go daemon on this machine.
 * See docs/benchmarks.md for what is measured and how.
 *
 *   npm run bench [-- options]
 *     --ours-only          skip the Go daemon (automatic when it cannot be built or started)
 *     --ours <mode>        tsx (`npm run dev`) | bundle (what `npm start` runs: scripts/build-local.mjs on plain node) | both (default)
 *     --go-runtime <r>     local (default; falls back to remote when a local install fails) | remote
 *     --no-profile         skip the --cpu-prof run of our daemon
 *     --no-bundles         skip scripts/bundle.mjs and bench/cold-init.mjs
 *     --no-ceiling         skip the load client's ceiling run
 *     --quick              a fifth of the requests (smoke test; numbers are noisier)
 *
 * Environment: DIFY_PLUGIN_DAEMON_SRC (checkout of langgenius/dify-plugin-daemon), BENCH_PYTHON
 * (the CPython both daemons run plugins on; default: a 3.12 found on PATH or under pyenv).
 */
import { execFile } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { packFixture } from "../test/support/fixture-packages.js";
import { buildGoDaemon, ensureServices, type GoBuild, goSource, startGoDaemon } from "./lib/go-daemon.js";
import { type OurMode, type RunningDaemon, startOurDaemon } from "./lib/our-daemon.js";
import { benchDir, buildDir, repoRoot, resultsDir } from "./lib/paths.js";
import {
  type DaemonEndpoint,
  debuggingKey,
  dispatchHeaders,
  dispatchPath,
  ECHO_BODY,
  ECHO_EVENTS,
  echoOnce,
  installIdentifier,
  listPluginIds,
  STREAM_BODY,
  STREAM_COUNT,
  uploadPackage,
  waitForTask,
} from "./lib/plugin-api.js";
import {
  type MemoryPeak,
  MiB,
  machineCpu,
  mergeSamples,
  sampleTree,
  startMemorySampler,
  type TreeSample,
} from "./lib/proc.js";
import { cleanupAll, type Managed, startProcess, waitUntil } from "./lib/processes.js";
import { profileMarkdown, summariseProfile } from "./lib/profile.js";
import { startRemotePlugin } from "./lib/remote-plugin.js";
import { round } from "./lib/stats.js";
import { resolveToolchain, type Toolchain } from "./lib/toolchain.js";
import { type LoadOptions, type LoadResult, mergeLoadResults, runLoad } from "./load.js";

const run = promisify(execFile);
const KEY = "bench-daemon-key";
/** The whole run stops by itself after this long, whatever state it is in. */
const HARD_CAP_MS = 20 * 60_000;

// ---------------------------------------------------------------------------------------------
// Options

interface Options {
  oursOnly: boolean;
  ours: OurMode[];
  goRuntime: "local" | "remote";
  profile: boolean;
  bundles: boolean;
  ceiling: boolean;
  quick: boolean;
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    oursOnly: false,
    ours: ["bundle", "tsx"],
    goRuntime: "local",
    profile: true,
    bundles: true,
    ceiling: true,
    quick: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--ours-only") o.oursOnly = true;
    else if (a === "--ours") {
      const v = argv[++i];
      if (v === "both") o.ours = ["bundle", "tsx"];
      else if (v === "tsx" || v === "bundle") o.ours = [v];
      else throw new Error(`--ours expects tsx, bundle or both, got ${v}`);
    } else if (a === "--go-runtime") {
      const v = argv[++i];
      if (v !== "local" && v !== "remote") throw new Error(`--go-runtime expects local or remote, got ${v}`);
      o.goRuntime = v;
    } else if (a === "--no-profile") o.profile = false;
    else if (a === "--no-bundles") o.bundles = false;
    else if (a === "--no-ceiling") o.ceiling = false;
    else if (a === "--quick") o.quick = true;
    else throw new Error(`unknown option ${a} (see the header of bench/run.ts)`);
  }
  return o;
}

const started = Date.now();
const log = (line: string) =>
  process.stderr.write(`[bench +${((Date.now() - started) / 1000).toFixed(0).padStart(3)}s] ${line}\n`);

// ---------------------------------------------------------------------------------------------
// Scenarios

interface Scenario {
  id: string;
  label: string;
  body: string;
  events: number;
  concurrency: number;
  /** Measured requests per round. */
  requests: number;
  warmup: number;
}

/**
 * Each scenario runs ROUNDS times per daemon, interleaved (Go, ours, then ours, Go, ...), and the
 * rounds are merged: slow drift of the machine (other work, thermal) then hits both alike.
 */
const ROUNDS = 3;

function scenarios(quick: boolean): Scenario[] {
  const n = (x: number) => (quick ? Math.max(10, Math.round(x / 5)) : x);
  return [
    {
      id: "echo-c1",
      label: "echo, concurrency 1",
      body: ECHO_BODY,
      events: ECHO_EVENTS,
      concurrency: 1,
      requests: n(800),
      warmup: n(80),
    },
    {
      id: "echo-c16",
      label: "echo, concurrency 16",
      body: ECHO_BODY,
      events: ECHO_EVENTS,
      concurrency: 16,
      requests: n(4000),
      warmup: n(160),
    },
    {
      id: "stream-c1",
      label: `stream_chunks(${STREAM_COUNT}), concurrency 1`,
      body: STREAM_BODY,
      events: STREAM_COUNT,
      concurrency: 1,
      requests: n(300),
      warmup: n(20),
    },
    {
      id: "stream-c16",
      label: `stream_chunks(${STREAM_COUNT}), concurrency 16`,
      body: STREAM_BODY,
      events: STREAM_COUNT,
      concurrency: 16,
      requests: n(800),
      warmup: n(32),
    },
  ];
}
const SCENARIO_MAX_MS = 60_000;

// ---------------------------------------------------------------------------------------------
// Measuring the daemons

interface MemorySnapshot {
  daemonRssMiB: number;
  launcherRssMiB: number;
  pluginRssMiB: number;
  pluginProcesses: number;
}

interface ScenarioResult extends LoadResult {
  daemonRssMaxMiB: number;
  pluginRssMaxMiB: number;
  daemonCpuMsPerRequest: number;
  launcherCpuMsPerRequest: number;
  pluginCpuMsPerRequest: number;
  /**
   * Per round: throughput, p50 latency, CPU the rest of the machine used meanwhile, and the
   * 1-minute load average sampled every second during the round (mean).
   */
  rounds: Array<{ throughputPerSecond: number; p50Ms: number; otherCpuPercent: number; loadAverage: number }>;
}

interface DaemonResult {
  name: string;
  describe: string;
  install?: {
    mode: "package" | "remote-debugging";
    uploadMs: number;
    taskMs?: number;
    runnableMs?: number;
    note?: string;
  };
  idle?: MemorySnapshot;
  /**
   * The first echo calls after start (c=1, in blocks of START_UP_BLOCK), before the measured
   * rounds: a JIT-compiled daemon is slower until its hot code is optimised, which the rounds,
   * meant for the steady state, leave out.
   */
  startUp?: Array<{ calls: number; p50Ms: number; firstByteP50Ms: number; p99Ms: number }>;
  afterLoad?: MemorySnapshot;
  /** Daemon CPU with no request, IDLE_CPU_WINDOW_S from QUIET_READING_S after the load, per minute. */
  idleCpuMsPerMinute?: number;
  /** QUIET_READING_S after the last scenario: what a daemon left alone after a burst keeps. */
  quietAfterLoad?: MemorySnapshot;
  scenarios: Record<string, ScenarioResult>;
  error?: string;
}

interface Target {
  daemon: RunningDaemon;
  endpoint: DaemonEndpoint;
  /** Plugin processes outside the daemon's tree (remote-debugging plugin). */
  extraRoots: number[];
}

/** A daemon that is up, has the plugin, and is being measured. */
interface Active {
  result: DaemonResult;
  target: Target;
  stop(): Promise<void>;
  dataDir?: string;
  runs: Map<
    string,
    Array<{
      load: LoadResult;
      before: TreeSample;
      after: TreeSample;
      peak: MemoryPeak;
      otherCpuPercent: number;
      loadAverage: number;
      sent: number;
    }>
  >;
}

const sample = (t: Target): TreeSample =>
  mergeSamples([sampleTree(t.daemon.rootPid, t.daemon.servingPid()), ...t.extraRoots.map((r) => sampleTree(r, -1))]);

const snapshot = (s: TreeSample): MemorySnapshot => ({
  daemonRssMiB: round(s.daemonRss / MiB, 1),
  launcherRssMiB: round(s.launcherRss / MiB, 1),
  pluginRssMiB: round(s.pluginRss / MiB, 1),
  pluginProcesses: s.pluginProcesses,
});

async function installPackage(
  endpoint: DaemonEndpoint,
  pkg: Uint8Array,
): Promise<NonNullable<DaemonResult["install"]>> {
  const t0 = performance.now();
  const uid = await uploadPackage(endpoint, pkg);
  const uploadMs = performance.now() - t0;
  const { taskId, allInstalled } = await installIdentifier(endpoint, uid);
  if (!allInstalled) await waitForTask(endpoint, taskId, 300_000);
  const taskMs = performance.now() - t0;
  let last = "";
  await waitUntil(
    "first successful dispatch after install",
    async () => {
      const r = await echoOnce(endpoint);
      last = r.detail;
      return r.ok;
    },
    120_000,
    50,
  ).catch((err: Error) => {
    throw new Error(`${err.message}; last answer: ${last}`);
  });
  return {
    mode: "package",
    uploadMs: round(uploadMs, 1),
    taskMs: round(taskMs, 1),
    runnableMs: round(performance.now() - t0, 1),
  };
}

/** A load of dispatch calls shaped like a scenario, on one daemon. */
const loadOn = (
  endpoint: DaemonEndpoint,
  shape: Pick<Scenario, "body" | "events" | "concurrency" | "requests" | "warmup">,
  keepSamples = false,
) =>
  runLoad({
    url: `${endpoint.baseUrl}${dispatchPath}`,
    headers: dispatchHeaders(endpoint),
    body: shape.body,
    concurrency: shape.concurrency,
    requests: shape.requests,
    warmup: shape.warmup,
    maxDurationMs: SCENARIO_MAX_MS,
    expectEvents: shape.events,
    keepSamples,
  });

async function runScenario(a: Active, sc: Scenario, roundIndex: number): Promise<void> {
  const { target } = a;
  const before = sample(target);
  const cpuBefore = machineCpu();
  const memory = startMemorySampler(() => sample(target), 100);
  const loads = [loadavg()[0] ?? 0];
  const loadTimer = setInterval(() => loads.push(loadavg()[0] ?? 0), 1000);
  const load = await loadOn(target.endpoint, sc, true);
  const peak = memory.stop();
  clearInterval(loadTimer);
  loads.push(loadavg()[0] ?? 0);
  const loadAverage = round(loads.reduce((a, b) => a + b, 0) / loads.length, 2);
  const after = sample(target);
  const cpuAfter = machineCpu();
  // Machine CPU not used by this daemon, its plugins or the load client (ourselves).
  const ownSeconds =
    after.daemonCpuSeconds +
    after.launcherCpuSeconds +
    after.pluginCpuSeconds -
    before.daemonCpuSeconds -
    before.launcherCpuSeconds -
    before.pluginCpuSeconds;
  const clientSeconds = (load.raw?.clientCpuMs ?? 0) / 1000;
  const wallSeconds = (cpuAfter.totalSeconds - cpuBefore.totalSeconds) / cpus().length;
  const otherSeconds = Math.max(0, cpuAfter.busySeconds - cpuBefore.busySeconds - ownSeconds - clientSeconds);
  const otherCpuPercent = round((otherSeconds / Math.max(0.001, wallSeconds)) * 100, 1);
  const list = a.runs.get(sc.id) ?? [];
  list.push({ load, before, after, peak, otherCpuPercent, loadAverage, sent: load.completed + sc.warmup });
  a.runs.set(sc.id, list);
  log(
    `${a.result.name}: ${sc.label} (round ${roundIndex + 1}): ${load.ok}/${load.completed} ok, p50 ${load.latencyMs.p50} ms, p99 ${load.latencyMs.p99} ms, ` +
      `${load.throughputPerSecond} req/s, client CPU ${load.client.cpuPercentOfOneCore}%, other CPU ${otherCpuPercent}%, load average ${loadAverage}` +
      `${load.errors ? `, errors: ${load.errorSamples.join(" | ")}` : ""}`,
  );
}

function mergeRuns(a: Active): void {
  for (const [id, runs] of a.runs) {
    const load = mergeLoadResults(runs.map((r) => r.load));
    const sent = runs.reduce((s, r) => s + r.sent, 0);
    const cpu = (pick: (t: TreeSample) => number) =>
      round((runs.reduce((s, r) => s + pick(r.after) - pick(r.before), 0) * 1000) / Math.max(1, sent), 3);
    a.result.scenarios[id] = {
      ...load,
      daemonRssMaxMiB: round(Math.max(...runs.map((r) => r.peak.daemonRssMax)) / MiB, 1),
      pluginRssMaxMiB: round(Math.max(...runs.map((r) => r.peak.pluginRssMax)) / MiB, 1),
      // CPU deltas include the warm-up requests, so they are divided by everything sent.
      daemonCpuMsPerRequest: cpu((t) => t.daemonCpuSeconds),
      launcherCpuMsPerRequest: cpu((t) => t.launcherCpuSeconds),
      pluginCpuMsPerRequest: cpu((t) => t.pluginCpuSeconds),
      rounds: runs.map((r) => ({
        throughputPerSecond: r.load.throughputPerSecond,
        p50Ms: r.load.latencyMs.p50,
        otherCpuPercent: r.otherCpuPercent,
        loadAverage: r.loadAverage,
      })),
    };
  }
}

// ---------------------------------------------------------------------------------------------
// The two daemons

async function startOurs(
  mode: OurMode,
  toolchain: Toolchain,
  pkg: Uint8Array,
  workDir: string,
  logDir: string,
): Promise<{ result: DaemonResult; active?: Active }> {
  const result: DaemonResult = { name: mode === "bundle" ? "ours" : "ours (tsx)", describe: "", scenarios: {} };
  let daemon: RunningDaemon | undefined;
  try {
    const dataDir = join(workDir, `ours-${mode}`);
    mkdirSync(dataDir, { recursive: true });
    daemon = await startOurDaemon({ mode, key: KEY, python: toolchain.python, uv: toolchain.uv, logDir, dataDir });
    result.describe = daemon.describe;
    const endpoint: DaemonEndpoint = { baseUrl: daemon.baseUrl, key: KEY, pluginId: "fixtures/echo-tool" };
    log(`${result.name}: installing echo-tool from its package`);
    result.install = await installPackage(endpoint, pkg);
    log(`${result.name}: runnable ${((result.install.runnableMs ?? 0) / 1000).toFixed(2)} s after upload`);
    const d = daemon;
    return {
      result,
      active: {
        result,
        target: { daemon, endpoint, extraRoots: [] },
        stop: () => d.stop(),
        dataDir: daemon.dataDir,
        runs: new Map(),
      },
    };
  } catch (err) {
    result.error = err instanceof Error ? err.message : String(err);
    log(`${result.name}: failed: ${result.error}`);
    await daemon?.stop();
    return { result };
  }
}

async function startGo(
  options: Options,
  toolchain: Toolchain,
  pkg: Uint8Array,
  workDir: string,
): Promise<{ result: DaemonResult; active?: Active; build?: GoBuild }> {
  const result: DaemonResult = { name: "go", describe: "", scenarios: {} };
  const src = goSource();
  let build: GoBuild | undefined;
  if (!src.dir) {
    result.error = src.reason;
    return { result, build };
  }
  let daemon: Awaited<ReturnType<typeof startGoDaemon>> | undefined;
  let remote: Managed | undefined;
  try {
    build = await buildGoDaemon(src.dir, log);
    log(
      build.cached
        ? `Go daemon binaries up to date (${build.commit.slice(0, 12)})`
        : `Go daemon built in ${build.buildSeconds.toFixed(0)} s`,
    );
    await ensureServices(log);
    const goDir = join(workDir, "go");
    mkdirSync(goDir, { recursive: true });
    daemon = await startGoDaemon(
      { build, key: KEY, python: toolchain.python, uv: toolchain.uv, workDir: goDir, remoteDebugging: true },
      log,
    );
    result.describe = daemon.describe;
    const endpoint: DaemonEndpoint = { baseUrl: daemon.baseUrl, key: KEY, pluginId: "fixtures/echo-tool" };
    const extraRoots: number[] = [];
    let installError: string | undefined;
    if (options.goRuntime === "local") {
      log("go: installing echo-tool from its package (local runtime)");
      try {
        result.install = await installPackage(endpoint, pkg);
        log(`go: runnable ${((result.install.runnableMs ?? 0) / 1000).toFixed(2)} s after upload`);
      } catch (err) {
        installError = err instanceof Error ? err.message : String(err);
        log(
          `go: local runtime could not run the plugin (${installError.slice(0, 300)}); falling back to remote debugging`,
        );
      }
    }
    if (!result.install) {
      if (!daemon.remotePort) throw new Error("remote debugging port not configured");
      const key = await debuggingKey(endpoint);
      const t0 = performance.now();
      remote = await startRemotePlugin({
        workDir: goDir,
        python: toolchain.python,
        uv: toolchain.uv,
        host: "127.0.0.1",
        port: daemon.remotePort,
        key,
      });
      extraRoots.push(remote.pid);
      await waitUntil("remote plugin registered", async () => (await listPluginIds(endpoint)).length > 0, 120_000, 200);
      endpoint.pluginId = (await listPluginIds(endpoint))[0];
      await waitUntil("remote plugin answers", async () => (await echoOnce(endpoint)).ok, 60_000, 100);
      result.install = {
        mode: "remote-debugging",
        uploadMs: 0,
        note: `plugin run through the remote-debugging port (not installed by the daemon)${installError ? `; local runtime failed: ${installError.slice(0, 300)}` : ""}`,
      };
      log(
        `go: remote plugin ${endpoint.pluginId} connected after ${((performance.now() - t0) / 1000).toFixed(1)} s (venv build included)`,
      );
    }
    const d = daemon;
    const r = remote;
    return {
      result,
      build,
      active: {
        result,
        target: { daemon, endpoint, extraRoots },
        stop: async () => {
          await r?.stop(3000);
          await d.stop();
        },
        runs: new Map(),
      },
    };
  } catch (err) {
    result.error = err instanceof Error ? err.message : String(err);
    log(`go: failed: ${result.error.slice(0, 1500)}`);
    await remote?.stop(3000);
    await daemon?.stop();
    return { result, build };
  }
}

/** Echo calls at c=1 from start until the daemon runs at its steady speed, in blocks. */
const START_UP_BLOCK = 500;
const START_UP_BLOCKS = 4;

/**
 * The first START_UP_BLOCK × START_UP_BLOCKS echo calls after start, recorded block by block:
 * V8 optimises the daemon's hot code only after it has run a while (on this machine the first
 * ~1,500 calls at c=1 are 1.5–1.9× slower than later ones), and Go needs no such warm-up. The
 * rounds after this measure the steady state; this records what the first callers get.
 */
async function measureStartUp(a: Active, blockCalls: number): Promise<void> {
  const blocks: NonNullable<DaemonResult["startUp"]> = [];
  for (let b = 0; b < START_UP_BLOCKS; b++) {
    const load = await loadOn(a.target.endpoint, {
      body: ECHO_BODY,
      events: ECHO_EVENTS,
      concurrency: 1,
      requests: blockCalls,
      warmup: 0,
    });
    blocks.push({
      calls: (b + 1) * blockCalls,
      p50Ms: load.latencyMs.p50,
      firstByteP50Ms: load.firstByteMs.p50,
      p99Ms: load.latencyMs.p99,
    });
  }
  a.result.startUp = blocks;
  log(
    `${a.result.name}: first echo calls after start, p50 by block of ${blockCalls}: ${blocks.map((b) => b.p50Ms).join(", ")} ms`,
  );
}

/** Idle memory, the calls after start, the interleaved rounds of every scenario, memory after load; then stops them all. */
async function measureAll(actives: Active[], scenarioList: Scenario[], quick: boolean): Promise<void> {
  for (const a of actives) for (let i = 0; i < 20; i++) await echoOnce(a.target.endpoint);
  await new Promise((r) => setTimeout(r, 2000));
  for (const a of actives) {
    a.result.idle = snapshot(sample(a.target));
    log(
      `${a.result.name}: idle RSS daemon ${a.result.idle.daemonRssMiB} MiB, plugins ${a.result.idle.pluginRssMiB} MiB (${a.result.idle.pluginProcesses})`,
    );
  }
  for (const a of actives) await measureStartUp(a, quick ? START_UP_BLOCK / 5 : START_UP_BLOCK);
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? actives : [...actives].reverse();
    for (const sc of scenarioList) for (const a of order) await runScenario(a, sc, r);
  }
  await new Promise((r) => setTimeout(r, 2000));
  for (const a of actives) {
    a.result.afterLoad = snapshot(sample(a.target));
    mergeRuns(a);
  }
  log(`memory after ${QUIET_READING_S} s without requests, then daemon CPU while idle…`);
  await new Promise((r) => setTimeout(r, (QUIET_READING_S - 2) * 1000));
  for (const a of actives) a.result.quietAfterLoad = snapshot(sample(a.target));
  const idleFrom = actives.map((a) => sample(a.target).daemonCpuSeconds);
  await new Promise((r) => setTimeout(r, IDLE_CPU_WINDOW_S * 1000));
  actives.forEach((a, i) => {
    const seconds = sample(a.target).daemonCpuSeconds - (idleFrom[i] ?? 0);
    a.result.idleCpuMsPerMinute = round((seconds * 1000 * 60) / IDLE_CPU_WINDOW_S, 0);
  });
}

/**
 * How long a daemon's own CPU is read with no request, from QUIET_READING_S after the load: past
 * the collections that follow a burst (V8's memory reducer and our daemon's release, Go's
 * scavenger), so it shows what an idle daemon costs while nothing happens.
 */
const IDLE_CPU_WINDOW_S = 20;

/**
 * When memory is read again after the load: past our daemon's MEMORY_RELEASE_IDLE_SECONDS (30 s,
 * checked every 5 s) and Go's scavenger's first passes alike.
 */
const QUIET_READING_S = 40;

// ---------------------------------------------------------------------------------------------
// Load client ceiling

async function runCeiling(scenarioList: Scenario[], logDir: string) {
  const server = startProcess(
    "ceiling server",
    join(repoRoot, "node_modules", ".bin", "tsx"),
    [join(benchDir, "ceiling-server.ts")],
    {
      cwd: repoRoot,
      logFile: join(logDir, "ceiling-server.log"),
    },
  );
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const deadline = setTimeout(() => reject(new Error("ceiling server did not start")), 30_000);
      const poll = setInterval(() => {
        const line = readFileSync(server.logFile, "utf8")
          .split("\n")
          .find((l) => l.startsWith("{"));
        if (line) {
          clearInterval(poll);
          clearTimeout(deadline);
          resolve((JSON.parse(line) as { port: number }).port);
        }
      }, 50);
    });
    const results: Record<string, LoadResult & { serverCpuMsPerRequest: number }> = {};
    for (const sc of scenarioList.filter((s) => s.concurrency > 1)) {
      const before = sampleTree(server.pid, -1);
      const load = await runLoad({
        url: `http://127.0.0.1:${port}${dispatchPath}`,
        headers: { "content-type": "application/json" },
        body: sc.body,
        concurrency: sc.concurrency,
        requests: sc.requests * 2,
        warmup: sc.warmup,
        maxDurationMs: 30_000,
        expectEvents: sc.events,
      });
      const after = sampleTree(server.pid, -1);
      const cpu =
        after.launcherCpuSeconds + after.daemonCpuSeconds - before.launcherCpuSeconds - before.daemonCpuSeconds;
      results[sc.id] = {
        ...load,
        serverCpuMsPerRequest: round((cpu * 1000) / Math.max(1, load.completed + sc.warmup), 3),
      };
      log(
        `ceiling: ${sc.label}: ${load.throughputPerSecond} req/s, p50 ${load.latencyMs.p50} ms, client CPU ${load.client.cpuPercentOfOneCore}% (${load.client.cpuMsPerRequest} ms/req)`,
      );
    }
    return results;
  } finally {
    await server.stop(2000);
  }
}

// ---------------------------------------------------------------------------------------------
// Profile

async function runProfile(
  mode: OurMode,
  toolchain: Toolchain,
  dataDir: string,
  scenarioList: Scenario[],
  logDir: string,
) {
  const profileDir = join(resultsDir, "profiles", mode);
  rmSync(profileDir, { recursive: true, force: true });
  mkdirSync(profileDir, { recursive: true });
  const daemon = await startOurDaemon({
    mode,
    key: KEY,
    python: toolchain.python,
    uv: toolchain.uv,
    dataDir,
    cpuProfileDir: profileDir,
    logDir,
  });
  const endpoint: DaemonEndpoint = { baseUrl: daemon.baseUrl, key: KEY, pluginId: "fixtures/echo-tool" };
  let requests = 0;
  const nowUs = () => Number(process.hrtime.bigint() / 1000n);
  let window: { fromUs: number; toUs: number } | undefined;
  try {
    await waitUntil("profiled daemon answers", async () => (await echoOnce(endpoint)).ok, 120_000, 100);
    const loads = scenarioList.filter((s) => s.concurrency > 1);
    const options = (sc: Scenario, warmupOnly: boolean): LoadOptions => ({
      url: `${endpoint.baseUrl}${dispatchPath}`,
      headers: dispatchHeaders(endpoint),
      body: sc.body,
      concurrency: sc.concurrency,
      requests: warmupOnly ? sc.warmup : sc.requests,
      warmup: 0,
      maxDurationMs: SCENARIO_MAX_MS,
      expectEvents: sc.events,
    });
    // Warm up (JIT, plugin process start) outside the summarised window.
    for (const sc of loads) await runLoad(options(sc, true));
    const fromUs = nowUs();
    for (const sc of loads) {
      const load = await runLoad(options(sc, false));
      requests += load.completed;
      log(`profile: ${sc.label}: ${load.throughputPerSecond} req/s under --cpu-prof`);
    }
    window = { fromUs, toUs: nowUs() };
  } finally {
    await daemon.stop();
  }
  const files = readdirSync(profileDir).filter((f) => f.endsWith(".cpuprofile"));
  const biggest = files.map((f) => join(profileDir, f)).sort((a, b) => statSync(b).size - statSync(a).size)[0];
  if (!biggest) throw new Error("the daemon wrote no .cpuprofile");
  const summary = summariseProfile(biggest, window);
  if (!summary.windowed)
    log("profile: could not line up the load window with the profile clock; summarising the whole profile");
  const title =
    mode === "tsx" ? "tsx src/local/main.ts (npm run dev)" : "bundled src/local/main.ts (what npm start runs)";
  return { summary, markdown: profileMarkdown(summary, { title, requests, describe: daemon.describe }) };
}

// ---------------------------------------------------------------------------------------------
// Bundle sizes and cold init (scripts/bundle.mjs and bench/cold-init.mjs, when present)

async function runBundles() {
  const bundleScript = join(repoRoot, "scripts", "bundle.mjs");
  const coldInit = join(benchDir, "cold-init.mjs");
  const out: { sizes?: unknown; coldInit?: unknown; sizesTable?: string; coldInitTable?: string; error?: string } = {};
  if (!existsSync(bundleScript)) return { error: "scripts/bundle.mjs not present" };
  // Own output locations, so the run leaves dist/ and the cold-init script's default output alone.
  const bundlesDir = join(buildDir, "functions");
  const coldInitFile = join(buildDir, "cold-init.json");
  const opts = { cwd: repoRoot, timeout: 300_000, maxBuffer: 16 * 1024 * 1024 };
  try {
    const b = await run(process.execPath, [bundleScript, "--out-dir", bundlesDir], opts);
    out.sizesTable = b.stdout.trim();
    const sizesFile = join(bundlesDir, "sizes.json");
    if (existsSync(sizesFile)) out.sizes = JSON.parse(readFileSync(sizesFile, "utf8"));
    if (existsSync(coldInit)) {
      const c = await run(process.execPath, [coldInit, "--bundles-dir", bundlesDir, "--out", coldInitFile], opts);
      out.coldInitTable = c.stdout
        .trim()
        .split("\n")
        .filter((l) => !l.includes("written to"))
        .join("\n");
      if (existsSync(coldInitFile)) out.coldInit = JSON.parse(readFileSync(coldInitFile, "utf8"));
    } else out.error = "bench/cold-init.mjs not present";
  } catch (err) {
    const e = err as Error & { stderr?: string };
    out.error = `${e.message}\n${e.stderr ?? ""}`.slice(0, 2000);
  }
  return out;
}

/** Committed results name no machine paths. */
function scrub(text: string, workDir: string): string {
  const pairs: Array<[string, string]> = [
    [workDir, "<run dir>"],
    [repoRoot, "<repo>"],
    [tmpdir(), "<tmp>"],
    [process.env.HOME ?? "\u0000", "~"],
  ];
  return pairs.reduce((t, [from, to]) => (from.length > 1 ? t.split(from).join(to) : t), text);
}

// ---------------------------------------------------------------------------------------------
// Report

type Row = [label: string, get: (r: DaemonResult) => number | undefined, unit: string];

function rows(): Row[] {
  const s = (id: string) => (r: DaemonResult) => r.scenarios[id];
  const lat = (id: string, p: "p50" | "p90" | "p99") => (r: DaemonResult) => s(id)(r)?.latencyMs[p];
  const rowsFor = (id: string, name: string): Row[] => [
    [`${name} latency p50`, lat(id, "p50"), "ms"],
    [`${name} latency p90`, lat(id, "p90"), "ms"],
    [`${name} latency p99`, lat(id, "p99"), "ms"],
  ];
  return [
    ["install: upload → task success", (r) => r.install?.taskMs, "ms"],
    ["install: upload → first invoke ok", (r) => r.install?.runnableMs, "ms"],
    ...Array.from(
      { length: START_UP_BLOCKS },
      (_, b): Row => [
        `echo c=1 p50, start-up block ${b + 1} of ${START_UP_BLOCKS}`,
        (r) => r.startUp?.[b]?.p50Ms,
        "ms",
      ],
    ),
    ...rowsFor("echo-c1", "echo c=1"),
    ...rowsFor("echo-c16", "echo c=16"),
    ["echo c=16 throughput", (r) => s("echo-c16")(r)?.throughputPerSecond, "req/s"],
    ...rowsFor("stream-c1", "stream100 c=1"),
    ["stream100 c=1 first byte p50", (r) => s("stream-c1")(r)?.firstByteMs.p50, "ms"],
    ["stream100 c=1 first byte p99", (r) => s("stream-c1")(r)?.firstByteMs.p99, "ms"],
    ...rowsFor("stream-c16", "stream100 c=16"),
    ["stream100 c=16 first byte p50", (r) => s("stream-c16")(r)?.firstByteMs.p50, "ms"],
    ["stream100 c=16 throughput", (r) => s("stream-c16")(r)?.throughputPerSecond, "req/s"],
    ["daemon RSS idle", (r) => r.idle?.daemonRssMiB, "MiB"],
    [
      "daemon RSS under load (max)",
      (r) => Math.max(...Object.values(r.scenarios).map((x) => x.daemonRssMaxMiB)),
      "MiB",
    ],
    [`daemon RSS ${QUIET_READING_S} s after load`, (r) => r.quietAfterLoad?.daemonRssMiB, "MiB"],
    ["plugin RSS idle", (r) => r.idle?.pluginRssMiB, "MiB"],
    [
      "plugin RSS under load (max)",
      (r) => Math.max(...Object.values(r.scenarios).map((x) => x.pluginRssMaxMiB)),
      "MiB",
    ],
    ["daemon CPU per echo (c=16)", (r) => s("echo-c16")(r)?.daemonCpuMsPerRequest, "ms"],
    ["daemon CPU while idle, per minute", (r) => r.idleCpuMsPerMinute, "ms"],
    ["daemon CPU per stream100 (c=16)", (r) => s("stream-c16")(r)?.daemonCpuMsPerRequest, "ms"],
    ["plugin CPU per echo (c=16)", (r) => s("echo-c16")(r)?.pluginCpuMsPerRequest, "ms"],
    [
      "load client CPU (max over runs)",
      (r) => Math.max(...Object.values(r.scenarios).map((x) => x.client.cpuPercentOfOneCore)),
      "% core",
    ],
    [
      "other processes' CPU (mean over runs)",
      (r) => mean(Object.values(r.scenarios).flatMap((x) => x.rounds.map((o) => o.otherCpuPercent))),
      "% core",
    ],
    [
      "machine load average (mean over runs)",
      (r) => mean(Object.values(r.scenarios).flatMap((x) => x.rounds.map((o) => o.loadAverage))),
      "",
    ],
  ];
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN);

function fmt(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return "–";
  if (Math.abs(n) >= 100) return n.toFixed(0);
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

function table(results: DaemonResult[]): string {
  const go = results.find((r) => r.name === "go" && !r.error);
  const ours = results.filter((r) => r.name !== "go");
  const header = [
    "metric",
    "unit",
    ...(go ? ["Go"] : []),
    ...ours.map((r) => r.name),
    ...(go ? ours.map((r) => `${r.name}/Go`) : []),
  ];
  const body = rows().map(([label, get, unit]) => {
    const g = go ? get(go) : undefined;
    const vals = ours.map((r) => (r.error && Object.keys(r.scenarios).length === 0 ? undefined : get(r)));
    return [
      label,
      unit,
      ...(go ? [fmt(g)] : []),
      ...vals.map(fmt),
      ...(go ? vals.map((v) => (v !== undefined && g ? `${(v / g).toFixed(2)}×` : "–")) : []),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join("  ");
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...body.map(line)].join("\n");
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const workDir = mkdtempSync(join(tmpdir(), "dify-bench-"));
  chmodSync(workDir, 0o755); // PostgreSQL runs as its own user and must reach its data directory below
  const logDir = join(workDir, "logs");
  mkdirSync(logDir, { recursive: true });
  mkdirSync(resultsDir, { recursive: true });
  const machine = {
    nproc: cpus().length,
    cpu: cpus()[0]?.model ?? "unknown",
    memoryGiB: round(totalmem() / 1024 ** 3, 1),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
  };
  log(`${machine.nproc} cores (${machine.cpu}), node ${machine.node}; logs in ${logDir}`);

  const toolchain = await resolveToolchain(log);
  log(`plugins run on CPython ${toolchain.pythonVersion} for both daemons; uv from scripts/python-toolchain.sh`);
  const pkg = await packFixture("echo-tool");
  const scenarioList = scenarios(options.quick);

  const results: DaemonResult[] = [];
  let ceiling: Awaited<ReturnType<typeof runCeiling>> | undefined;
  if (options.ceiling) {
    log("load client ceiling against bench/ceiling-server.ts");
    ceiling = await runCeiling(scenarioList, logDir).catch((err: Error) => {
      log(`ceiling failed: ${err.message}`);
      return undefined;
    });
  }

  let goBuild: GoBuild | undefined;
  let goSkipped: string | undefined;
  const actives: Active[] = [];
  if (options.oursOnly) goSkipped = "--ours-only";
  else {
    const go = await startGo(options, toolchain, pkg, workDir);
    goBuild = go.build;
    results.push(go.result);
    if (go.active) actives.push(go.active);
    else goSkipped = `Go daemon unavailable: ${(go.result.error ?? "").slice(0, 500)}`;
  }
  const dataDirs = new Map<OurMode, string>();
  for (const mode of options.ours) {
    const ours = await startOurs(mode, toolchain, pkg, workDir, logDir);
    results.push(ours.result);
    if (ours.active) {
      actives.push(ours.active);
      if (ours.active.dataDir) dataDirs.set(mode, ours.active.dataDir);
    }
  }
  try {
    await measureAll(actives, scenarioList, options.quick);
  } finally {
    for (const a of actives) await a.stop();
  }

  const profiles: Partial<Record<OurMode, ReturnType<typeof summariseProfile>>> = {};
  if (options.profile && dataDirs.size) {
    const sections: string[] = [];
    for (const [mode, dataDir] of dataDirs) {
      log(`profiling our daemon (${mode}) under load (--cpu-prof)`);
      const p = await runProfile(mode, toolchain, dataDir, scenarioList, logDir).catch((err: Error) => {
        log(`profile failed: ${err.message}`);
        return undefined;
      });
      if (!p) continue;
      profiles[mode] = p.summary;
      sections.push(p.markdown);
    }
    if (sections.length) {
      const header = [
        "# CPU profile of our dispatch path under load",
        "",
        `Generated by \`npm run bench\` on ${new Date().toISOString().slice(0, 10)} (${cpus().length} cores), daemon started with \`node --cpu-prof\`.`,
        "Raw profiles: bench/results/profiles/ (not committed). Positions: from the bundle's source map for the bundled build,",
        "the function's declaration line in the source under tsx (tsx's transformed positions do not match the source).",
        "",
      ];
      writeFileSync(join(resultsDir, "profile-summary.md"), [...header, ...sections].join("\n"));
      log("profile: summary in bench/results/profile-summary.md");
    }
  }

  let bundles: Awaited<ReturnType<typeof runBundles>> | undefined;
  if (options.bundles) {
    log("handler bundle sizes (scripts/bundle.mjs) and cold init (bench/cold-init.mjs)");
    bundles = await runBundles();
  }

  const measuredAt = new Date().toISOString();
  const git = async (args: string[]) =>
    (await run("git", args, { cwd: repoRoot }).catch(() => ({ stdout: "" }))).stdout.trim();
  const report = {
    measuredAt,
    machine,
    repo: {
      commit: await git(["rev-parse", "HEAD"]),
      uncommittedFiles: (await git(["status", "--porcelain", "--untracked-files=no"])).split("\n").filter(Boolean)
        .length,
    },
    options: { ...options, scenarios: scenarioList.map(({ body: _b, ...s }) => s) },
    python: toolchain.pythonVersion,
    goDaemon: goBuild
      ? { commit: goBuild.commit, go: goBuild.goVersion, buildSeconds: goBuild.buildSeconds, cached: goBuild.cached }
      : undefined,
    goSkipped,
    results,
    ceiling,
    profile: Object.fromEntries(
      Object.entries(profiles).map(([mode, p]) => [
        mode,
        {
          busyMs: p.busyMs,
          byCategory: p.byCategory,
          topSelf: p.topSelf.slice(0, 8),
          topSelfOurs: p.topSelfOurs.slice(0, 8),
        },
      ]),
    ),
    bundles: bundles ? { sizes: bundles.sizes, coldInit: bundles.coldInit, error: bundles.error } : undefined,
    durationSeconds: Math.round((Date.now() - started) / 1000),
  };
  const stamp = measuredAt.replace(/[:.]/g, "-");
  const json = `${scrub(JSON.stringify(report, null, 2), workDir)}\n`;
  writeFileSync(join(resultsDir, `${stamp}.json`), json);
  writeFileSync(join(resultsDir, "latest.json"), json);

  const out: string[] = [];
  out.push("");
  out.push(
    `Dispatch benchmark, ${measuredAt}: ${machine.nproc} cores (${machine.cpu}), ${machine.memoryGiB} GiB, node ${machine.node}, plugins on CPython ${toolchain.pythonVersion}`,
  );
  for (const r of results)
    out.push(
      `  ${r.name}: ${r.describe || "(not started)"}${r.error ? `  [error: ${r.error.slice(0, 300)}]` : ""}${r.install?.note ? `  [${r.install.note}]` : ""}`,
    );
  if (goSkipped) out.push(`  Go column omitted: ${goSkipped}`);
  out.push("");
  out.push(table(results));
  const launcher = results.find((r) => r.name === "ours (tsx)")?.idle?.launcherRssMiB;
  if (launcher)
    out.push(`\n(ours under tsx: the tsx CLI launcher process adds ${launcher} MiB RSS beside the daemon RSS above)`);
  if (ceiling) {
    out.push("\nLoad client ceiling (bench/ceiling-server.ts, canned answers, same client):");
    for (const [id, c] of Object.entries(ceiling)) {
      out.push(
        `  ${id}: ${c.throughputPerSecond} req/s, p50 ${c.latencyMs.p50} ms, client CPU ${c.client.cpuPercentOfOneCore}% of a core (${c.client.cpuMsPerRequest} ms/request)`,
      );
    }
  }
  if (bundles?.sizesTable) out.push(`\nHandler bundles (scripts/bundle.mjs):\n${bundles.sizesTable}`);
  if (bundles?.coldInitTable) out.push(`\nCold init (bench/cold-init.mjs):\n${bundles.coldInitTable}`);
  if (bundles?.error) out.push(`\nBundles/cold init: ${bundles.error}`);
  out.push(`\nWritten to bench/results/${stamp}.json and bench/results/latest.json (${report.durationSeconds} s).`);
  console.log(out.join("\n"));
  if (results.some((r) => r.error)) log(`logs kept in ${logDir} (and the Go daemon's under ${workDir})`);
  else removeAtExit = workDir;
}

const cap = setTimeout(() => {
  log(`hard cap of ${HARD_CAP_MS / 60_000} min reached: stopping everything`);
  void cleanupAll().finally(() => process.exit(2));
}, HARD_CAP_MS);

let interrupted = false;
/** The run's temporary directory, removed after everything in it has been stopped. */
let removeAtExit: string | undefined;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    interrupted = true;
    log(`${signal}: stopping everything`);
    void cleanupAll().finally(() => process.exit(130));
  });
}

main()
  .catch((err: unknown) => {
    log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exitCode = 1;
  })
  .finally(async () => {
    if (interrupted) return;
    await cleanupAll();
    if (removeAtExit) rmSync(removeAtExit, { recursive: true, force: true });
    clearTimeout(cap);
  });
