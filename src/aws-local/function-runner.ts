/**
 * Runs Lambda functions as Lambda runs them, on this machine, for the Lambda service emulator
 * (lambda-service.ts):
 * - code: a stack's asset directory, or the function's zip from S3 unpacked once per change;
 *   layers unpacked as /opt (AWS_LAMBDA_EXEC_WRAPPER=/opt/… resolves into it);
 * - an execution environment (execution-environment.ts) per concurrent invocation: an idle one of
 *   the function's current revision is reused (warm), else a new one starts (cold), up to the
 *   reserved concurrency or a per-function cap (then 429, as Lambda throttles);
 * - the function's Timeout ends an invocation with Sandbox.Timedout and discards its environment;
 *   its MemorySize is enforced on the environment's resident memory (Runtime.OutOfMemory);
 * - Lambda's environment variables (AWS_LAMBDA_FUNCTION_*, _HANDLER, LAMBDA_TASK_ROOT, a /tmp
 *   of its own, the execution role's credentials) plus the endpoints of the local services;
 * - cold starts measured per environment: runtime start → init done (first /next) → marks found
 *   in its log (e.g. the plugin bootstrap's "plugin ready") → first response bytes.
 * Idle environments are stopped after a while, as Lambda reclaims them.
 */
import { cp, mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { AsyncQueue } from "../shared/async-queue.js";
import { codeDirectory, unpackCode } from "./code-archive.js";
import { ExecutionEnvironment } from "./execution-environment.js";
import {
  type ChangeOutcome,
  type FunctionRunner,
  type LambdaFunction,
  type RunnerInvocation,
  Throttled,
} from "./lambda-service.js";
import type { ManagedRuntimes } from "./managed-runtimes.js";
import type { RuntimeOutput } from "./runtime-api.js";

export interface FunctionRunnerOptions {
  /** Unpacked code, layers and each environment's /tmp go here. */
  stateDir: string;
  runtimes: Pick<ManagedRuntimes, "commandLine">;
  /** Layer version ARN → its unpacked content (what Lambda puts in /opt). */
  layers: ReadonlyMap<string, string>;
  /** Reads a code zip from S3. */
  fetchCode: (bucket: string, key: string) => Promise<Uint8Array>;
  /** Added to each environment after the function's own variables: credentials, endpoints of the local services. */
  environment: (fn: LambdaFunction) => Record<string, string>;
  /** Environments a function without reserved concurrency may have at once. @default 10 */
  maxEnvironmentsPerFunction?: number;
  /** An environment idle this long is stopped. @default 10 minutes */
  idleTimeoutMs?: number;
  /** A /tmp kept for all environments of a function and across runs (e.g. a builder's package cache); default: a fresh one each. */
  persistentTmp?: (fn: LambdaFunction) => string | undefined;
  /** Log lines whose first appearance is timed in the cold start, by name. */
  marks?: Record<string, RegExp>;
  /** What happens to environments: cold starts, timeouts, crashes, and every log line. */
  onEvent?: (event: RunnerEvent) => void;
}

export type RunnerEvent =
  | { type: "log"; functionName: string; environment: number; line: string }
  | { type: "cold-start"; report: EnvironmentReport }
  | { type: "ended"; functionName: string; environment: number; reason: string };

/** One environment, as GET /aws-local/environments lists it; times in ms since its runtime started. */
export interface EnvironmentReport {
  functionName: string;
  environment: number;
  revision: number;
  state: "busy" | "idle" | "stopped";
  memorySizeMiB: number;
  startedAt: string;
  /** Runtime started → its first /next (Lambda's Init Duration). */
  initMs?: number;
  /** Runtime started → the first appearance of each mark's log line. */
  marks: Record<string, number>;
  /** Runtime started → first response bytes of its first invocation. */
  firstChunkMs?: number;
  /** First invocation received → its first response bytes. */
  firstInvocationToChunkMs?: number;
  invocations: number;
  maxMemoryMiB: number;
}

interface Pooled {
  id: number;
  fn: string;
  revision: number;
  memorySizeMiB: number;
  env: ExecutionEnvironment;
  busy: boolean;
  lastUsed: number;
  invocations: number;
  marks: Record<string, number>;
  firstInvocationAt?: number;
  firstChunkAt?: number;
  tmp: string;
  ownTmp: boolean;
}

const DEFAULT_MAX_ENVIRONMENTS = 10;
const DEFAULT_IDLE_MS = 10 * 60_000;
const SWEEP_MS = 30_000;
const KEPT_REPORTS = 200;

export class LocalFunctionRunner implements FunctionRunner {
  private readonly pools = new Map<string, Pooled[]>();
  private readonly stopped: EnvironmentReport[] = [];
  private readonly taskRoots = new Map<string, Promise<string>>();
  /** Environments being started, by function: they count against its concurrency. */
  private readonly starting = new Map<string, number>();
  private nextId = 1;
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly options: FunctionRunnerOptions) {
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweeper.unref();
  }

  async prepare(fn: LambdaFunction): Promise<ChangeOutcome> {
    try {
      await this.taskRoot(fn);
      return { ok: true };
    } catch (err) {
      return { ok: false, reason: (err as Error).message, code: "InvalidCode" };
    }
  }

  async invoke(fn: LambdaFunction, payload: Uint8Array): Promise<RunnerInvocation> {
    const pooled = await this.environmentFor(fn);
    const timeoutMs = fn.configuration.Timeout * 1000;
    const invocation = pooled.env.api.invoke(payload, { timeoutMs, functionArn: fn.arn });
    pooled.invocations += 1;
    const first = pooled.invocations === 1;
    if (first) pooled.firstInvocationAt = Date.now();
    const timer = setTimeout(() => {
      const seconds = (timeoutMs / 1000).toFixed(2);
      void pooled.env.kill(
        "Sandbox.Timedout",
        `RequestId: ${invocation.id} Error: Task timed out after ${seconds} seconds`,
      );
    }, timeoutMs);
    // Drained here, not by the caller: a caller that goes away does not stop the function, as in Lambda.
    const out = Object.assign(new AsyncQueue<RuntimeOutput>(), { contentType: undefined as string | undefined });
    void (async () => {
      try {
        for await (const item of invocation) {
          if (item.kind === "chunk" && first && pooled.firstChunkAt === undefined) {
            pooled.firstChunkAt = Date.now();
            this.options.onEvent?.({ type: "cold-start", report: this.report(pooled) });
          }
          out.contentType = invocation.contentType;
          out.push(item);
        }
      } finally {
        clearTimeout(timer);
        out.close();
        this.release(pooled);
      }
    })();
    return out;
  }

  retire(fn: LambdaFunction, deleted: boolean): void {
    for (const pooled of this.pools.get(fn.name) ?? []) {
      if ((deleted || pooled.revision !== fn.revision) && !pooled.busy)
        void this.end(pooled, deleted ? "function deleted" : "function updated");
    }
    if (deleted) {
      for (const key of this.taskRoots.keys()) if (key.startsWith(`${fn.name}@`)) this.taskRoots.delete(key);
      void rm(join(this.options.stateDir, "code", fn.name), { recursive: true, force: true });
    }
  }

  describe(): EnvironmentReport[] {
    const live = [...this.pools.values()].flat().map((p) => this.report(p));
    return [...this.stopped, ...live];
  }

  async stop(): Promise<void> {
    clearInterval(this.sweeper);
    await Promise.all([...this.pools.values()].flat().map((p) => this.end(p, "shutdown")));
  }

  // -------------------------------------------------------------------------------------------

  private async environmentFor(fn: LambdaFunction): Promise<Pooled> {
    const pool = this.pools.get(fn.name) ?? [];
    this.pools.set(fn.name, pool);
    const warm = pool.find((p) => !p.busy && p.revision === fn.revision && p.env.running);
    if (warm) {
      warm.busy = true;
      return warm;
    }
    const limit = fn.reservedConcurrency ?? this.options.maxEnvironmentsPerFunction ?? DEFAULT_MAX_ENVIRONMENTS;
    const starting = this.starting.get(fn.name) ?? 0;
    if (pool.filter((p) => p.busy).length + starting >= limit) {
      throw new Throttled(
        "Rate Exceeded.",
        fn.reservedConcurrency !== undefined
          ? "ReservedFunctionConcurrentInvocationLimitExceeded"
          : "ConcurrentInvocationLimitExceeded",
      );
    }
    this.starting.set(fn.name, starting + 1);
    try {
      return await this.startEnvironment(fn, pool);
    } finally {
      this.starting.set(fn.name, (this.starting.get(fn.name) ?? 1) - 1);
    }
  }

  private async startEnvironment(fn: LambdaFunction, pool: Pooled[]): Promise<Pooled> {
    const id = this.nextId++;
    const c = fn.configuration;
    const runtime = c.Runtime ?? "provided.al2023";
    const [taskRoot, commandLine, opt] = await Promise.all([
      this.taskRoot(fn),
      this.options.runtimes.commandLine(runtime),
      this.optDirectory(fn),
    ]);
    const persistent = this.options.persistentTmp?.(fn);
    const tmp = persistent ?? join(this.options.stateDir, "tmp", `${fn.name}-${id}`);
    await mkdir(tmp, { recursive: true });
    const variables = c.Environment?.Variables ?? {};
    const wrapper = variables.AWS_LAMBDA_EXEC_WRAPPER;
    const [command, ...args] = wrapper ? [wrapper.replace(/^\/opt(?=\/)/, opt ?? "/opt"), ...commandLine] : commandLine;
    const logGroup = `/aws/lambda/${fn.name}`;
    const marks: Record<string, number> = {};
    const env = await ExecutionEnvironment.start({
      command: command!,
      args,
      taskRoot,
      memoryLimitMiB: c.MemorySize,
      env: {
        PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
        LANG: "en_US.UTF-8",
        TZ: ":UTC",
        HOME: tmp,
        TMPDIR: tmp,
        ...variables,
        _HANDLER: c.Handler ?? "",
        AWS_EXECUTION_ENV: `AWS_Lambda_${runtime}`,
        AWS_LAMBDA_FUNCTION_NAME: fn.name,
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(c.MemorySize),
        AWS_LAMBDA_FUNCTION_VERSION: "$LATEST",
        AWS_LAMBDA_INITIALIZATION_TYPE: "on-demand",
        AWS_LAMBDA_LOG_GROUP_NAME: logGroup,
        AWS_LAMBDA_LOG_STREAM_NAME: `${new Date().toISOString().slice(0, 10).replaceAll("-", "/")}/[$LATEST]${id}`,
        ...(opt && { AWS_LOCAL_OPT_DIR: opt }),
        ...this.options.environment(fn),
      },
      onOutput: (line) => {
        const since = Date.now() - env.startedAt;
        for (const [name, pattern] of Object.entries(this.options.marks ?? {})) {
          if (marks[name] === undefined && pattern.test(line)) marks[name] = since;
        }
        this.options.onEvent?.({ type: "log", functionName: fn.name, environment: id, line });
      },
    });
    const pooled: Pooled = {
      id,
      fn: fn.name,
      revision: fn.revision,
      memorySizeMiB: c.MemorySize,
      env,
      busy: true,
      lastUsed: Date.now(),
      invocations: 0,
      marks,
      tmp,
      ownTmp: persistent === undefined,
    };
    pool.push(pooled);
    void env.exited.then(() => this.forget(pooled, "runtime exited"));
    return pooled;
  }

  private release(pooled: Pooled): void {
    pooled.busy = false;
    pooled.lastUsed = Date.now();
    // A runtime that failed its init is not reused; nor is one of an older revision.
    const current = this.pools.get(pooled.fn);
    if (!pooled.env.running || pooled.env.api.initError) void this.end(pooled, "init failed");
    else if (current?.some((p) => p.revision > pooled.revision)) void this.end(pooled, "function updated");
  }

  private sweep(): void {
    const idleMs = this.options.idleTimeoutMs ?? DEFAULT_IDLE_MS;
    for (const pooled of [...this.pools.values()].flat()) {
      if (!pooled.busy && Date.now() - pooled.lastUsed > idleMs) void this.end(pooled, "idle");
    }
  }

  private async end(pooled: Pooled, reason: string): Promise<void> {
    this.forget(pooled, reason);
    await pooled.env.stop();
  }

  private forget(pooled: Pooled, reason: string): void {
    const pool = this.pools.get(pooled.fn);
    const index = pool?.indexOf(pooled) ?? -1;
    if (index < 0) return;
    pool!.splice(index, 1);
    pooled.busy = false;
    this.stopped.push({ ...this.report(pooled), state: "stopped" });
    if (this.stopped.length > KEPT_REPORTS) this.stopped.shift();
    if (pooled.ownTmp) void rm(pooled.tmp, { recursive: true, force: true });
    this.options.onEvent?.({ type: "ended", functionName: pooled.fn, environment: pooled.id, reason });
  }

  private report(p: Pooled): EnvironmentReport {
    const started = p.env.startedAt;
    const firstNext = p.env.api.firstNextAt;
    return {
      functionName: p.fn,
      environment: p.id,
      revision: p.revision,
      state: p.env.running ? (p.busy ? "busy" : "idle") : "stopped",
      memorySizeMiB: p.memorySizeMiB,
      startedAt: new Date(started).toISOString(),
      ...(firstNext !== undefined && { initMs: firstNext - started }),
      marks: { ...p.marks },
      ...(p.firstChunkAt !== undefined && { firstChunkMs: p.firstChunkAt - started }),
      ...(p.firstChunkAt !== undefined &&
        p.firstInvocationAt !== undefined && { firstInvocationToChunkMs: p.firstChunkAt - p.firstInvocationAt }),
      invocations: p.invocations,
      maxMemoryMiB: Math.round(p.env.maxMemoryBytes / 1024 / 1024),
    };
  }

  /** The function's code as a directory: its own (a stack asset) or its zip unpacked, once per change of code. */
  private taskRoot(fn: LambdaFunction): Promise<string> {
    if (fn.code.directory) return Promise.resolve(fn.code.directory);
    const key = `${fn.name}@${fn.codeRevision}`;
    let root = this.taskRoots.get(key);
    if (!root) {
      const { S3Bucket: bucket, S3Key: objectKey } = fn.code;
      if (!bucket || !objectKey) return Promise.reject(new Error(`function ${fn.name} has no code`));
      const dir = codeDirectory(this.options.stateDir, fn.name, fn.codeRevision);
      root = (async () => {
        let zip: Uint8Array;
        try {
          zip = await this.options.fetchCode(bucket, objectKey);
        } catch (err) {
          throw new Error(
            `Error occurred while GetObject. S3 Error Code: ${(err as Error).name}. S3 Error Message: ${(err as Error).message}`,
          );
        }
        await rm(dir, { recursive: true, force: true });
        await unpackCode(zip, dir);
        return dir;
      })();
      root.catch(() => this.taskRoots.delete(key));
      this.taskRoots.set(key, root);
    }
    return root;
  }

  /** /opt: the function's one layer as it is, or several layers copied over each other in order. */
  private async optDirectory(fn: LambdaFunction): Promise<string | undefined> {
    const arns = (fn.configuration.Layers ?? []).map((l) => l.Arn);
    const dirs = arns.map((arn) => {
      const dir = this.options.layers.get(arn);
      if (!dir) throw new Error(`layer ${arn} does not exist here`);
      return dir;
    });
    if (dirs.length <= 1) return dirs[0];
    const merged = join(this.options.stateDir, "opt", `${fn.name}-${fn.revision}`);
    await rm(merged, { recursive: true, force: true });
    for (const dir of dirs) await cp(dir, merged, { recursive: true });
    return merged;
  }
}
