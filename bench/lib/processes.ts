/**
 * Child processes the benchmark starts: each in its own process group with output to a log
 * file, registered so that every one of them is stopped (by pid, with its descendants) when the
 * run ends, fails, or is interrupted.
 */
import { type ChildProcess, type SpawnOptions, spawn } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { isAlive, processTree, signalTree } from "./proc.js";

export interface Managed {
  name: string;
  child: ChildProcess;
  pid: number;
  logFile: string;
  exited: Promise<number | null>;
  /** SIGTERM to the process, SIGKILL to its whole tree after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
  logTail(chars?: number): string;
}

const running = new Set<Managed>();
const cleanups: Array<() => Promise<void> | void> = [];

export function startProcess(
  name: string,
  command: string,
  args: string[],
  options: SpawnOptions & { logFile: string },
): Managed {
  const fd = openSync(options.logFile, "a");
  const child = spawn(command, args, { ...options, stdio: ["ignore", fd, fd], detached: true });
  closeSync(fd);
  if (child.pid === undefined) throw new Error(`${name}: failed to start ${command}`);
  const pid = child.pid;
  const exited = new Promise<number | null>((resolve) => {
    child.once("exit", (code) => resolve(code));
    child.once("error", () => resolve(-1));
  });
  const managed: Managed = {
    name,
    child,
    pid,
    logFile: options.logFile,
    exited,
    async stop(graceMs = 5000) {
      // Remember the descendants first: once the parent is gone they are re-parented.
      const tree = processTree(pid).map((s) => s.pid);
      if (isAlive(pid)) {
        try {
          process.kill(pid, "SIGTERM");
        } catch {
          // gone
        }
        await Promise.race([exited, new Promise((r) => setTimeout(r, graceMs))]);
      }
      for (const p of [pid, ...tree]) if (isAlive(p)) signalTree(p, "SIGKILL");
      running.delete(managed);
    },
    logTail(chars = 3000) {
      try {
        return readFileSync(options.logFile, "utf8").slice(-chars);
      } catch {
        return "";
      }
    },
  };
  running.add(managed);
  return managed;
}

/** Registers work to do when the run ends (stopping databases, removing temp dirs). */
export function onCleanup(fn: () => Promise<void> | void): void {
  cleanups.push(fn);
}

export async function cleanupAll(): Promise<void> {
  await Promise.all([...running].map((m) => m.stop(3000).catch(() => undefined)));
  while (cleanups.length) {
    const fn = cleanups.pop() as () => Promise<void> | void;
    try {
      await fn();
    } catch {
      // best effort
    }
  }
}

/** A port that was free a moment ago on loopback. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const address = srv.address();
      const port = typeof address === "object" && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Polls `check` until it resolves true, or throws after `timeoutMs`. */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
  intervalMs = 100,
  failFast?: () => string | undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    const reason = failFast?.();
    if (reason) throw new Error(`${what}: ${reason}`);
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${timeoutMs / 1000}s`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export async function httpOk(url: string): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  await res.arrayBuffer();
  return res.ok;
}

/**
 * Runs a benchmark's body and exits: 0 when it is done, 1 when it fails, 130 on SIGINT or SIGTERM,
 * 2 when the hard cap the body sets (`hardCap(minutes)`, once its options are read) is reached;
 * everything started through startProcess or onCleanup is stopped first in every case.
 */
export async function runBenchmark(
  log: (line: string) => void,
  body: (hardCap: (minutes: number) => void) => Promise<void>,
): Promise<never> {
  let timer: NodeJS.Timeout | undefined;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      log(`${signal}: stopping everything`);
      void cleanupAll().finally(() => process.exit(130));
    });
  }
  const hardCap = (minutes: number) => {
    timer = setTimeout(() => {
      log(`hard cap of ${minutes} min reached: stopping everything`);
      void cleanupAll().finally(() => process.exit(2));
    }, minutes * 60_000);
    timer.unref();
  };
  try {
    await body(hardCap);
    await cleanupAll();
    clearTimeout(timer);
    process.exit(0);
  } catch (err) {
    log(`failed: ${(err as Error).stack ?? String(err)}`);
    await cleanupAll();
    process.exit(1);
  }
}
