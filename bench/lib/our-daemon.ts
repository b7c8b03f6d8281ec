/**
 * Starts this project's local daemon for measurement, configured only through the environment
 * like `npm start`:
 *  - "bundle": what `npm start` runs: src/local/main.ts bundled by scripts/build-local.mjs and run
 *              by plain node (dependencies stay in node_modules);
 *  - "tsx":    `tsx src/local/main.ts` (`npm run dev`), to show what running TypeScript through a
 *              loader costs.
 * With `cpuProfileDir`, the serving node process runs with --cpu-prof and writes its profile there
 * when it exits (SIGTERM makes the daemon exit cleanly).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { buildDir, repoRoot } from "./paths.js";
import { processTree } from "./proc.js";
import { freePort, httpOk, type Managed, startProcess, waitUntil } from "./processes.js";

export type OurMode = "tsx" | "bundle";

export interface OurDaemonOptions {
  mode: OurMode;
  key: string;
  python: string;
  uv: string;
  /** Reuse a data directory (plugins already installed); a fresh one otherwise. */
  dataDir?: string;
  cpuProfileDir?: string;
  logDir: string;
  /**
   * "bundle" mode: run these node arguments (what scripts/build-local.mjs printed for a bundle
   * built elsewhere: its node options, then its entry) instead of bundling the working tree again.
   */
  bundleCommand?: string[];
  /** More environment (e.g. PLUGIN_IDLE_TIMEOUT), over the benchmark's configuration. */
  env?: NodeJS.ProcessEnv;
  /** How often the health check is polled while starting (ms; default 100), and for how long (default 60 s). */
  healthPollMs?: number;
  healthTimeoutMs?: number;
}

export interface RunningDaemon {
  name: string;
  baseUrl: string;
  key: string;
  /** Root of the process tree (launcher or daemon). */
  rootPid: number;
  /** The process that serves HTTP. */
  servingPid: () => number;
  dataDir: string;
  process: Managed;
  describe: string;
  /** performance.now() when the process was spawned and when its health check first answered. */
  spawnedAtMs: number;
  healthyAtMs: number;
  stop(): Promise<void>;
}

const BUNDLE = join(buildDir, "local-daemon", "main.mjs");

/**
 * Bundles the local daemon with the same script `npm start` uses; answers what `npm start` then
 * runs after `node`: the script's node options (one per line) and the entry (the last line).
 */
export function localDaemonCommand(): string[] {
  const out = execFileSync(
    process.execPath,
    [join(repoRoot, "scripts", "build-local.mjs"), "--out-dir", join(buildDir, "local-daemon")],
    {
      encoding: "utf8",
    },
  );
  const lines = out.trim().split("\n");
  return lines.length ? lines : [BUNDLE];
}

export async function startOurDaemon(options: OurDaemonOptions): Promise<RunningDaemon> {
  const port = await freePort();
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "bench-ours-"));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    SERVER_HOST: "127.0.0.1",
    SERVER_PORT: String(port),
    SERVER_KEY: options.key,
    STORE_BACKEND: "local",
    DATA_DIR: dataDir,
    FORCE_VERIFYING_SIGNATURE: "false",
    PYTHON_INTERPRETER_PATH: options.python,
    UV_PATH: options.uv,
    PLUGIN_REMOTE_INSTALLING_ENABLED: "false",
    ...options.env,
  };
  const prof = options.cpuProfileDir ? ["--cpu-prof", `--cpu-prof-dir=${options.cpuProfileDir}`] : [];
  let command: string;
  let args: string[];
  let describe: string;
  if (options.mode === "bundle") {
    command = process.execPath;
    const nodeArgs = options.bundleCommand ?? localDaemonCommand();
    args = [...prof, ...nodeArgs];
    const flags = nodeArgs.slice(0, -1).join(" ");
    describe = `node ${flags} ${relative(repoRoot, nodeArgs.at(-1) ?? BUNDLE)} (scripts/build-local.mjs bundle and node options, as npm start runs it)`;
  } else if (prof.length) {
    // The tsx CLI does not pass --cpu-prof on (and NODE_OPTIONS refuses it): run its loader directly.
    command = process.execPath;
    args = [...prof, "--import", "tsx", join("src", "local", "main.ts")];
    describe = "node --cpu-prof --import tsx src/local/main.ts";
  } else {
    command = join(repoRoot, "node_modules", ".bin", "tsx");
    args = [join("src", "local", "main.ts")];
    describe = "tsx src/local/main.ts (what npm start runs)";
  }
  const spawnedAtMs = performance.now();
  const managed = startProcess(`ours (${options.mode})`, command, args, {
    cwd: repoRoot,
    env,
    logFile: join(options.logDir, `ours-${options.mode}${prof.length ? "-profiled" : ""}.log`),
  });
  const baseUrl = `http://127.0.0.1:${port}`;
  let exitedEarly: string | undefined;
  void managed.exited.then((code) => {
    exitedEarly = `exited with ${code}: ${managed.logTail(1500)}`;
  });
  await waitUntil(
    `our daemon on ${baseUrl}`,
    () => httpOk(`${baseUrl}/health/check`),
    options.healthTimeoutMs ?? 60_000,
    options.healthPollMs ?? 100,
    () => exitedEarly,
  );
  const healthyAtMs = performance.now();
  const servingPid = () => {
    // tsx CLI → node child (serving) → python plugins; plain node serves itself.
    const child = processTree(managed.pid).find((s) => s.pid !== managed.pid && s.comm === "node");
    return command === process.execPath ? managed.pid : (child?.pid ?? managed.pid);
  };
  return {
    name: "ours",
    baseUrl,
    key: options.key,
    rootPid: managed.pid,
    servingPid,
    dataDir,
    process: managed,
    describe,
    spawnedAtMs,
    healthyAtMs,
    stop: () => managed.stop(10_000),
  };
}
