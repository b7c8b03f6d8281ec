/**
 * The upstream Go daemon (langgenius/dify-plugin-daemon), built from the checkout named by
 * DIFY_PLUGIN_DAEMON_SRC and run beside ours with an equivalent configuration:
 *   PLATFORM=local, SERVER_KEY, FORCE_VERIFYING_SIGNATURE=false, plugin storage on local disk in a
 *   temporary directory, PostgreSQL and Redis on loopback (throwaway data directory and ports),
 *   UV_PATH and the Python the Go daemon's `uv venv --python 3.12` finds (first on PATH) set to
 *   the same toolchain our daemon uses, PIP_MIRROR_AUTO_DETECT=false (no mirror probing).
 * Its uv cache (<PLUGIN_WORKING_PATH>/.uv-cache) is linked to the cache our daemon's installs use,
 * so both install the plugin's dependencies from the same warm cache.
 *
 * Builds: `go build ./cmd/server` and `./cmd/commandline` (whose `migrate` creates the tables, as
 * upstream's Dockerfile does before starting the server) into a cache directory outside the
 * repository; skipped when the checkout's commit, working-tree state and Go version are unchanged.
 */
import { execFile, execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import type { RunningDaemon } from "./our-daemon.js";
import { cacheDir } from "./paths.js";
import { freePort, httpOk, type Managed, onCleanup, startProcess, waitUntil } from "./processes.js";

const run = promisify(execFile);
const isRoot = () => process.getuid?.() === 0;

export interface GoBuild {
  server: string;
  commandline: string;
  commit: string;
  goVersion: string;
  buildSeconds: number;
  cached: boolean;
}

/** The checkout named by DIFY_PLUGIN_DAEMON_SRC, or why there is none. */
export function goSource(): { dir?: string; reason?: string } {
  const dir = process.env.DIFY_PLUGIN_DAEMON_SRC;
  if (!dir) return { reason: "DIFY_PLUGIN_DAEMON_SRC is not set" };
  const mod = join(dir, "go.mod");
  if (!existsSync(mod)) return { reason: "DIFY_PLUGIN_DAEMON_SRC has no go.mod" };
  if (!/^module github\.com\/langgenius\/dify-plugin-daemon\s*$/m.test(readFileSync(mod, "utf8"))) {
    return { reason: "DIFY_PLUGIN_DAEMON_SRC is not a langgenius/dify-plugin-daemon checkout" };
  }
  return { dir };
}

async function output(cmd: string, args: string[], cwd?: string): Promise<string> {
  try {
    return (await run(cmd, args, { cwd, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 })).stdout.trim();
  } catch {
    return "";
  }
}

export async function buildGoDaemon(src: string, log: (line: string) => void): Promise<GoBuild> {
  const goVersion = await output("go", ["version"]);
  if (!goVersion) throw new Error("no `go` on PATH");
  const commit = (await output("git", ["rev-parse", "HEAD"], src)) || "unknown";
  const dirty = await output("git", ["status", "--porcelain"], src);
  const stamp = createHash("sha256").update(`${src}\n${commit}\n${dirty}\n${goVersion}`).digest("hex");
  const outDir = join(cacheDir(), "bench", "go-daemon");
  const server = join(outDir, "server");
  const commandline = join(outDir, "commandline");
  const stampFile = join(outDir, "stamp");
  if (
    commit !== "unknown" &&
    !dirty &&
    existsSync(server) &&
    existsSync(commandline) &&
    existsSync(stampFile) &&
    readFileSync(stampFile, "utf8") === stamp
  ) {
    return { server, commandline, commit, goVersion, buildSeconds: 0, cached: true };
  }
  mkdirSync(outDir, { recursive: true });
  log(
    `building the Go daemon (${commit.slice(0, 12)}, ${goVersion}); the first build downloads modules and takes minutes`,
  );
  const started = Date.now();
  for (const [pkg, out] of [
    ["./cmd/server", server],
    ["./cmd/commandline", commandline],
  ] as const) {
    await new Promise<void>((resolve, reject) => {
      const child = spawn("go", ["build", "-o", out, pkg], { cwd: src, stdio: ["ignore", "pipe", "pipe"] });
      let tail = "";
      const keep = (c: Buffer) => (tail = (tail + c.toString()).slice(-3000));
      child.stdout.on("data", keep);
      child.stderr.on("data", keep);
      const timer = setTimeout(() => child.kill("SIGKILL"), 25 * 60_000);
      child.on("error", (err) => reject(err));
      child.on("close", (code) => {
        clearTimeout(timer);
        if (code === 0) resolve();
        else reject(new Error(`go build ${pkg} failed (${code}): ${tail}`));
      });
    });
  }
  writeFileSync(stampFile, stamp);
  return { server, commandline, commit, goVersion, buildSeconds: (Date.now() - started) / 1000, cached: false };
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL and Redis

function postgresBinDir(): string | undefined {
  // pg_config names the server's bin directory on most installs; Debian keeps initdb off PATH.
  try {
    const dir = execFileSync("pg_config", ["--bindir"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
    if (dir && existsSync(join(dir, "initdb"))) return dir;
  } catch {
    // no pg_config
  }
  const base = "/usr/lib/postgresql";
  if (existsSync(base)) {
    const versions = readdirSync(base)
      .filter((v) => existsSync(join(base, v, "bin", "initdb")))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0]) return join(base, versions[0], "bin");
  }
  return undefined;
}

async function onPath(cmd: string): Promise<boolean> {
  return (await output("sh", ["-c", `command -v ${cmd}`])) !== "";
}

let aptUpdated = false;
/** Installs PostgreSQL and Redis from Debian packages when missing (root with apt only). */
export async function ensureServices(log: (line: string) => void): Promise<void> {
  const missing: string[] = [];
  if (!postgresBinDir()) missing.push("postgresql");
  if (!(await onPath("redis-server"))) missing.push("redis-server");
  if (missing.length === 0) return;
  if (!isRoot() || !(await onPath("apt-get")))
    throw new Error(`missing ${missing.join(", ")} (install them, or run as root on Debian)`);
  log(`installing ${missing.join(", ")} (apt-get)`);
  const opts = {
    timeout: 10 * 60_000,
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  };
  if (!aptUpdated) {
    await run("apt-get", ["update"], opts);
    aptUpdated = true;
  }
  await run("apt-get", ["install", "-y", "--no-install-recommends", ...missing], opts);
}

/** Runs a PostgreSQL tool as the `postgres` user when we are root (the server refuses root). */
function asPostgres(cmd: string, args: string[]): [string, string[]] {
  return isRoot() ? ["runuser", ["-u", "postgres", "--", cmd, ...args]] : [cmd, args];
}

interface Postgres {
  port: number;
  /** The postmaster's pid (its backends are its children); pg_ctl detaches it from us. */
  pid(): number | undefined;
  stop(): Promise<void>;
}

async function startPostgres(dir: string, log: (line: string) => void): Promise<Postgres> {
  const bin = postgresBinDir();
  if (!bin) throw new Error("PostgreSQL binaries not found");
  const data = join(dir, "data");
  mkdirSync(dir, { recursive: true });
  if (isRoot()) {
    const uid = Number(await output("id", ["-u", "postgres"]));
    const gid = Number(await output("id", ["-g", "postgres"]));
    if (!Number.isInteger(uid) || uid <= 0) throw new Error("no `postgres` user to run PostgreSQL as");
    chownSync(dir, uid, gid);
  }
  const port = await freePort();
  const [initCmd, initArgs] = asPostgres(join(bin, "initdb"), [
    "-D",
    data,
    "-A",
    "trust",
    "-U",
    "postgres",
    "--no-sync",
  ]);
  await run(initCmd, initArgs, { timeout: 120_000 });
  const [ctl, ctlArgs] = asPostgres(join(bin, "pg_ctl"), [
    "-D",
    data,
    "-l",
    join(dir, "postgres.log"),
    "-o",
    `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1`,
    "-w",
    "-t",
    "60",
    "start",
  ]);
  await run(ctl, ctlArgs, { timeout: 90_000 });
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    const [cmd, args] = asPostgres(join(bin, "pg_ctl"), ["-D", data, "-m", "fast", "-w", "-t", "30", "stop"]);
    await run(cmd, args, { timeout: 60_000 }).catch(() => undefined);
  };
  onCleanup(stop);
  // The database the daemon expects (it would also create it on first connect).
  await run(
    join(bin, "psql"),
    ["-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-d", "postgres", "-c", "CREATE DATABASE dify_plugin"],
    {
      timeout: 30_000,
    },
  );
  log(`PostgreSQL ${bin.split("/").at(-2)} on 127.0.0.1:${port}`);
  const pid = () => {
    try {
      const n = Number(readFileSync(join(data, "postmaster.pid"), "utf8").split("\n")[0]);
      return Number.isInteger(n) && n > 0 ? n : undefined;
    } catch {
      return undefined;
    }
  };
  return { port, pid, stop };
}

function redisPing(port: number, password: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    let data = "";
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.on("error", () => done(false));
    socket.on("connect", () => socket.write(`AUTH ${password}\r\nPING\r\n`));
    socket.on("data", (chunk) => {
      data += chunk.toString();
      if (data.includes("+PONG")) done(true);
      else if (data.includes("-ERR") || data.includes("-WRONGPASS")) done(false);
    });
  });
}

async function startRedis(
  dir: string,
  password: string,
  log: (line: string) => void,
): Promise<{ port: number; process: Managed }> {
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const managed = startProcess(
    "redis",
    "redis-server",
    [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--requirepass",
      password,
      "--dir",
      dir,
    ],
    {
      logFile: join(dir, "redis.log"),
    },
  );
  await waitUntil("redis", () => redisPing(port, password), 20_000);
  log(`Redis on 127.0.0.1:${port}`);
  return { port, process: managed };
}

// ---------------------------------------------------------------------------------------------
// The daemon

export interface GoDaemonOptions {
  build: GoBuild;
  key: string;
  python: string;
  uv: string;
  /** Temporary directory for everything the Go daemon and its databases write. */
  workDir: string;
  /** Also listen for remote-debugging plugins (the fallback when its local runtime cannot run). */
  remoteDebugging: boolean;
}

export interface RunningGoDaemon extends RunningDaemon {
  remotePort?: number;
  /** Roots of the process trees of PostgreSQL and Redis, which upstream needs beside it. */
  servicePids(): number[];
  /**
   * Stops only the server (SIGTERM; its plugin processes with it) and starts it again on the same
   * data, database and Redis, as after a host restart of the daemon alone.
   */
  restart(options?: { healthPollMs?: number }): Promise<RunningGoDaemon>;
}

/**
 * Upstream beside ours for a run over official plugins: local runtime only (no remote-debugging
 * port), in a work directory of its own under the system's temporary directory. A daemon that does
 * not start is reported in `error`, so that the run goes on with ours alone.
 */
export async function startUpstreamBeside(
  options: Omit<GoDaemonOptions, "workDir" | "remoteDebugging"> & { workPrefix: string },
  log: (line: string) => void,
): Promise<{ daemon?: RunningGoDaemon; workDir?: string; error?: string }> {
  const { workPrefix, ...rest } = options;
  let workDir: string | undefined;
  try {
    await ensureServices(log);
    workDir = mkdtempSync(join(tmpdir(), workPrefix));
    return { daemon: await startGoDaemon({ ...rest, workDir, remoteDebugging: false }, log), workDir };
  } catch (err) {
    return { workDir, error: (err as Error).message };
  }
}

export async function startGoDaemon(options: GoDaemonOptions, log: (line: string) => void): Promise<RunningGoDaemon> {
  const { workDir } = options;
  if (isRoot()) chmodSync(workDir, 0o755); // the postgres user must reach its data directory
  const pg = await startPostgres(join(workDir, "pg"), log);
  const redisPassword = "bench-redis";
  let redis: Awaited<ReturnType<typeof startRedis>> | undefined;
  try {
    redis = await startRedis(join(workDir, "redis"), redisPassword, log);
    return await startServer(options, pg, redis, redisPassword);
  } catch (err) {
    await redis?.process.stop(3000);
    await pg.stop();
    throw err;
  }
}

async function startServer(
  options: GoDaemonOptions,
  pg: Postgres,
  redis: Awaited<ReturnType<typeof startRedis>>,
  redisPassword: string,
): Promise<RunningGoDaemon> {
  const { workDir } = options;

  const home = join(workDir, "go");
  const working = join(home, "cwd");
  mkdirSync(working, { recursive: true });
  const uvCache = join(cacheDir(), "uv-cache");
  mkdirSync(uvCache, { recursive: true });
  symlinkSync(uvCache, join(working, ".uv-cache"));

  const port = await freePort();
  const remotePort = options.remoteDebugging ? await freePort() : undefined;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    // `uv venv --python 3.12` looks for the interpreter on PATH first.
    PATH: `${dirname(options.python)}:${process.env.PATH ?? ""}`,
    SERVER_HOST: "127.0.0.1",
    SERVER_PORT: String(port),
    SERVER_KEY: options.key,
    GIN_MODE: "release",
    PLATFORM: "local",
    DIFY_INNER_API_URL: "http://127.0.0.1:9",
    DIFY_INNER_API_KEY: "bench-inner-key",
    PLUGIN_STORAGE_TYPE: "local",
    PLUGIN_STORAGE_LOCAL_ROOT: join(home, "storage"),
    PLUGIN_WORKING_PATH: working,
    PLUGIN_INSTALLED_PATH: "plugin",
    PLUGIN_PACKAGE_CACHE_PATH: "plugin_packages",
    PERSISTENCE_STORAGE_PATH: "persistence",
    FORCE_VERIFYING_SIGNATURE: "false",
    PIP_MIRROR_AUTO_DETECT: "false",
    PYTHON_INTERPRETER_PATH: options.python,
    UV_PATH: options.uv,
    PYTHON_ENV_INIT_TIMEOUT: "120",
    PLUGIN_REMOTE_INSTALLING_ENABLED: options.remoteDebugging ? "true" : "false",
    ...(remotePort
      ? { PLUGIN_REMOTE_INSTALLING_HOST: "127.0.0.1", PLUGIN_REMOTE_INSTALLING_PORT: String(remotePort) }
      : {}),
    REDIS_HOST: "127.0.0.1",
    REDIS_PORT: String(redis.port),
    REDIS_PASSWORD: redisPassword,
    REDIS_DB: "0",
    DB_TYPE: "postgresql",
    DB_USERNAME: "postgres",
    DB_PASSWORD: "bench",
    DB_HOST: "127.0.0.1",
    DB_PORT: String(pg.port),
    DB_DATABASE: "dify_plugin",
    DB_SSL_MODE: "disable",
  };

  await run(options.build.commandline, ["migrate"], { cwd: home, env, timeout: 120_000 }).catch(
    (err: Error & { stderr?: string }) => {
      throw new Error(`migrate failed: ${err.stderr ?? err.message}`);
    },
  );

  return spawnServer(options, env, port, remotePort, pg, redis, 100);
}

async function spawnServer(
  options: GoDaemonOptions,
  env: NodeJS.ProcessEnv,
  port: number,
  remotePort: number | undefined,
  pg: Postgres,
  redis: Awaited<ReturnType<typeof startRedis>>,
  healthPollMs: number,
): Promise<RunningGoDaemon> {
  const { workDir } = options;
  const home = join(workDir, "go");
  const spawnedAtMs = performance.now();
  const managed = startProcess("go daemon", options.build.server, [], {
    cwd: home,
    env,
    logFile: join(workDir, "go-daemon.log"),
  });
  const baseUrl = `http://127.0.0.1:${port}`;
  let exitedEarly: string | undefined;
  void managed.exited.then((code) => {
    exitedEarly = `exited with ${code}: ${managed.logTail(1500)}`;
  });
  await waitUntil(
    `Go daemon on ${baseUrl}`,
    () => httpOk(`${baseUrl}/health/check`),
    90_000,
    healthPollMs,
    () => exitedEarly,
  );
  const healthyAtMs = performance.now();
  return {
    name: "go",
    baseUrl,
    key: options.key,
    rootPid: managed.pid,
    servingPid: () => managed.pid,
    dataDir: home,
    process: managed,
    describe: `upstream ${options.build.commit.slice(0, 12)} (${options.build.goVersion.replace(/^go version /, "")}), PostgreSQL + Redis on loopback`,
    remotePort,
    spawnedAtMs,
    healthyAtMs,
    servicePids: () => [pg.pid(), redis.process.pid].filter((p): p is number => p !== undefined),
    async restart(o = {}) {
      await managed.stop(10_000);
      return spawnServer(options, env, port, remotePort, pg, redis, o.healthPollMs ?? 100);
    },
    async stop() {
      await managed.stop(10_000);
      await redis.process.stop(3000);
      await pg.stop();
    },
  };
}
