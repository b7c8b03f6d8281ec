/**
 * One Lambda execution environment on this machine: its Runtime API (runtime-api.ts) plus the
 * runtime process polling it (the managed runtime's client or a layer's exec wrapper), in a
 * process group of its own so that stopping the environment stops everything the runtime
 * started (a plugin child included), as Lambda freezes and discards a whole sandbox.
 *
 * With a memory limit, the group's resident memory is sampled and the environment is killed
 * above it, failing its invocation with Runtime.OutOfMemory as Lambda does.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { LambdaRuntimeApi } from "./runtime-api.js";

export interface EnvironmentSettings {
  /** The executable Lambda would start, e.g. the layer's exec wrapper. */
  command: string;
  /** Its arguments; for an exec wrapper, the managed runtime's own command line (interpreter first). */
  args: string[];
  /** LAMBDA_TASK_ROOT and working directory. */
  taskRoot: string;
  /** The function's environment variables plus anything the host needs (PATH). */
  env: Record<string, string>;
  /** MemorySize of the function; the environment is killed above it. Unset: not enforced. */
  memoryLimitMiB?: number;
  /** Every line the runtime writes (CloudWatch, in Lambda), as it arrives. */
  onOutput?: (line: string) => void;
}

const MEMORY_SAMPLE_MS = 500;

/** Process groups of live environments, killed when this process exits, so none outlives it. */
const liveGroups = new Set<number>();
process.once("exit", () => {
  for (const pgid of liveGroups) {
    try {
      process.kill(-pgid, "SIGKILL");
    } catch {
      // Gone already.
    }
  }
});
const LOG_TAIL_CHARS = 20_000;

/** A running environment; `exited` resolves when its process ends (it is then unusable). */
export class ExecutionEnvironment {
  private log = "";
  readonly exited: Promise<void>;
  private alive = true;
  /** Why the environment was killed, when this side killed it. */
  private killedFor: { errorType: string; errorMessage: string } | undefined;
  private memoryTimer: NodeJS.Timeout | undefined;
  /** Highest resident memory seen (bytes), Lambda's "Max Memory Used". */
  maxMemoryBytes = 0;

  /** When the runtime process was started (Date.now()). */
  readonly startedAt = Date.now();

  private constructor(
    readonly api: LambdaRuntimeApi,
    private readonly child: ChildProcess,
    settings: EnvironmentSettings,
  ) {
    let partial = "";
    const keep = (chunk: Buffer) => {
      const text = chunk.toString("utf8");
      this.log = (this.log + text).slice(-LOG_TAIL_CHARS);
      if (!settings.onOutput) return;
      const lines = (partial + text).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) settings.onOutput(line);
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    if (child.pid !== undefined) liveGroups.add(child.pid);
    this.exited = new Promise((resolve) => {
      const done = (why: string) => {
        if (!this.alive) return;
        this.alive = false;
        if (child.pid !== undefined) liveGroups.delete(child.pid);
        clearInterval(this.memoryTimer);
        // The runtime's children (a plugin) die with it, as the whole sandbox goes in Lambda.
        this.signal("SIGKILL");
        const reason = this.killedFor ?? {
          errorType: "Runtime.ExitError",
          errorMessage: `RequestId: - Error: Runtime exited ${why}`,
        };
        api.failAll(reason.errorType, reason.errorMessage);
        resolve();
      };
      child.once("exit", (code, signal) => done(signal ? `with signal: ${signal}` : `with error: exit status ${code}`));
      child.once("error", (err) => done(`: ${err.message}`));
    });
    if (settings.memoryLimitMiB !== undefined) this.watchMemory(settings.memoryLimitMiB * 1024 * 1024);
  }

  static async start(settings: EnvironmentSettings): Promise<ExecutionEnvironment> {
    const api = await LambdaRuntimeApi.start();
    const child = spawn(settings.command, settings.args, {
      cwd: settings.taskRoot,
      env: { ...settings.env, AWS_LAMBDA_RUNTIME_API: api.address, LAMBDA_TASK_ROOT: settings.taskRoot },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    return new ExecutionEnvironment(api, child, settings);
  }

  get running(): boolean {
    return this.alive;
  }

  /** What the runtime wrote to stdout and stderr (CloudWatch, in Lambda), the last 20 000 characters. */
  get output(): string {
    return this.log;
  }

  /** Ends the environment, failing what it runs with this error (a timeout, say). */
  async kill(errorType: string, errorMessage: string): Promise<void> {
    this.killedFor ??= { errorType, errorMessage };
    await this.stop();
  }

  async stop(): Promise<void> {
    if (this.alive) {
      this.signal("SIGKILL");
      await this.exited;
    }
    await this.api.close();
  }

  private signal(signal: NodeJS.Signals): void {
    const pid = this.child.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, signal);
    } catch {
      // The group is gone already.
    }
  }

  private watchMemory(limitBytes: number): void {
    const pgid = this.child.pid;
    if (pgid === undefined) return;
    this.memoryTimer = setInterval(() => {
      void groupResidentBytes(pgid).then((bytes) => {
        if (!this.alive) return;
        this.maxMemoryBytes = Math.max(this.maxMemoryBytes, bytes);
        if (bytes > limitBytes) {
          const used = Math.round(bytes / 1024 / 1024);
          void this.kill(
            "Runtime.OutOfMemory",
            `RequestId: - Error: Runtime exited with error: signal: killed (${used} MB used, memory size ${limitBytes / 1024 / 1024} MB)`,
          );
        }
      });
    }, MEMORY_SAMPLE_MS);
    this.memoryTimer.unref();
  }
}

const PAGE_BYTES = 4096;

/** Resident memory of every process in a process group, from /proc (Linux); 0 elsewhere. */
async function groupResidentBytes(pgid: number): Promise<number> {
  let names: string[];
  try {
    names = await readdir("/proc");
  } catch {
    return 0;
  }
  let total = 0;
  await Promise.all(
    names
      .filter((n) => /^\d+$/.test(n))
      .map(async (pid) => {
        try {
          const stat = await readFile(`/proc/${pid}/stat`, "utf8");
          // Fields after the command name, which may contain spaces: state ppid pgrp … rss is the 22nd.
          const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
          if (Number(fields[2]) === pgid) total += Number(fields[21]) * PAGE_BYTES;
        } catch {
          // The process ended meanwhile.
        }
      }),
  );
  return total;
}
