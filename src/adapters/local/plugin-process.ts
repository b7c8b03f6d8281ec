/**
 * One long-lived Python process running a plugin over stdio, shared by all tenants and
 * sessions. Sessions are multiplexed by session id; backwards invocations are answered on
 * stdin. Readiness is the first heartbeat; a process that stops heartbeating, exits, or grows
 * past its memory limit ends its open sessions with an error and is started again on demand.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { backwardsResponseLine, parsePluginEvents, runtimeError, toSessionOutput } from "../../domain/plugin-protocol.js";
import { logger } from "../../logger.js";
import type { InvokeOptions, PluginRequest, SessionOutput } from "../../ports/plugin-runtime.js";
import { AsyncQueue } from "../../shared/async-queue.js";

export interface PluginProcessOptions {
  uniqueIdentifier: string;
  directory: string;
  entrypoint: string;
  memoryBytes: number;
  readyTimeoutMs?: number;
  /** The process is restarted if it goes this long without a heartbeat (upstream: 120 s). */
  heartbeatTimeoutMs?: number;
}

interface OpenSession {
  request: PluginRequest;
  output: AsyncQueue<SessionOutput>;
  options: InvokeOptions;
  finish(last?: SessionOutput): void;
}

const STDERR_TAIL = 2000;
/** How often resident memory and heartbeats are checked: a plugin can overshoot its limit for this long. */
const WATCHDOG_INTERVAL_MS = 250;

export class PluginProcess {
  private child: ChildProcessWithoutNullStreams | undefined;
  private ready: Promise<void> | undefined;
  private readonly sessions = new Map<string, OpenSession>();
  private stderrTail = "";
  private lastHeartbeat = 0;
  private watchdog: NodeJS.Timeout | undefined;
  private stopping = false;

  constructor(private readonly options: PluginProcessOptions) {}

  /** Starts the process if needed and resolves once it is ready. */
  start(): Promise<void> {
    this.ready ??= this.spawn().catch((err: unknown) => {
      this.ready = undefined;
      throw err;
    });
    return this.ready;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  invoke(request: PluginRequest, options: InvokeOptions): AsyncIterable<SessionOutput> {
    const output = new AsyncQueue<SessionOutput>();
    const onAbort = () => session.finish();
    const session: OpenSession = {
      request,
      output,
      options,
      // The one way a session ends: plugin's `end`, abort, or the process going away.
      finish: (last) => {
        if (output.isClosed) return;
        this.sessions.delete(request.session_id);
        // A long execution timeout must not keep a finished session reachable until it fires.
        options.signal.removeEventListener("abort", onAbort);
        if (last) output.push(last);
        output.push({ type: "end" });
        output.close();
      },
    };
    options.signal.addEventListener("abort", onAbort, { once: true });
    this.start().then(
      () => {
        if (output.isClosed) return;
        this.sessions.set(request.session_id, session);
        this.write(`${JSON.stringify(request)}\n`);
      },
      (err: Error) => session.finish(runtimeError(`plugin failed to start: ${err.message}`)),
    );
    return output;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.watchdog);
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.stdin.end();
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
    await exited;
    clearTimeout(timer);
  }

  private spawn(): Promise<void> {
    const { directory, entrypoint } = this.options;
    const child = spawn(join(directory, ".venv", "bin", "python"), ["-m", entrypoint], {
      cwd: directory,
      env: pluginEnvironment(),
      stdio: ["pipe", "pipe", "pipe"],
    });
    this.child = child;
    this.stderrTail = "";
    child.stderr.on("data", (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString("utf8")).slice(-STDERR_TAIL);
    });
    child.stdin.on("error", () => undefined);
    return new Promise((resolve, reject) => {
      const readyTimer = setTimeout(() => {
        reject(new Error(`plugin did not become ready within ${(this.options.readyTimeoutMs ?? 120_000) / 1000}s`));
        child.kill("SIGKILL");
      }, this.options.readyTimeoutMs ?? 120_000);
      const lines = createInterface({ input: child.stdout, crlfDelay: Infinity });
      lines.on("line", (line) => {
        for (const event of parsePluginEvents(line)) {
          if (event.event === "heartbeat") {
            this.lastHeartbeat = Date.now();
            clearTimeout(readyTimer);
            resolve();
          } else if (event.event === "session") {
            this.route(event.session_id, event.data);
          } else if (event.event === "log") {
            logger.info({ plugin: this.options.uniqueIdentifier, level: event.data.level }, event.data.message);
          } else {
            logger.warn({ plugin: this.options.uniqueIdentifier, data: event.data }, "plugin reported an error");
          }
        }
      });
      child.on("exit", (code, signal) => {
        clearTimeout(readyTimer);
        clearInterval(this.watchdog);
        const reason = `plugin process exited (${signal ?? `code ${code}`})${this.stderrTail ? `: ${lastLines(this.stderrTail)}` : ""}`;
        reject(new Error(reason));
        this.onExit(child, reason);
      });
      this.watchdog = setInterval(() => void this.checkHealth(child), WATCHDOG_INTERVAL_MS);
      this.watchdog.unref();
    });
  }

  private route(sessionId: string, message: Parameters<typeof toSessionOutput>[0]): void {
    const session = this.sessions.get(sessionId);
    if (!session) return;
    if (message.type === "invoke") {
      void this.answerBackwards(session, message.data);
      return;
    }
    const output = toSessionOutput(message);
    if (!output) return;
    if (output.type === "end") session.finish();
    else session.output.push(output);
  }

  private async answerBackwards(session: OpenSession, request: { type: string; backwards_request_id: string; request: Record<string, unknown> }) {
    try {
      for await (const event of session.options.backwards(request)) {
        this.write(backwardsResponseLine(session.request, event));
      }
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      for (const event of ["error", "end"] as const) {
        this.write(backwardsResponseLine(session.request, { backwards_request_id: request.backwards_request_id, event, message, data: null }));
      }
    }
  }

  private write(line: string): void {
    this.child?.stdin.write(line);
  }

  /** Memory limit (resident set size against the manifest's resource.memory) and liveness. */
  private async checkHealth(child: ChildProcessWithoutNullStreams): Promise<void> {
    if (child !== this.child || child.exitCode !== null || !child.pid) return;
    const rss = await residentBytes(child.pid);
    if (rss !== undefined && rss > this.options.memoryBytes) {
      this.stderrTail += `\nplugin exceeded its memory limit (${Math.round(rss / 1048576)} MiB > ${Math.round(this.options.memoryBytes / 1048576)} MiB) and was stopped`;
      child.kill("SIGKILL");
      return;
    }
    const heartbeatTimeout = this.options.heartbeatTimeoutMs ?? 120_000;
    if (this.lastHeartbeat && Date.now() - this.lastHeartbeat > heartbeatTimeout) {
      this.stderrTail += `\nno heartbeat for ${heartbeatTimeout / 1000}s`;
      child.kill("SIGKILL");
    }
  }

  private onExit(child: ChildProcessWithoutNullStreams, reason: string): void {
    if (child !== this.child) return;
    this.child = undefined;
    this.ready = undefined;
    if (!this.stopping) logger.warn({ plugin: this.options.uniqueIdentifier, reason }, "plugin process ended");
    for (const session of [...this.sessions.values()]) session.finish(runtimeError(reason));
  }
}

/** Only what a plugin needs from the daemon's environment: never the daemon's own secrets. */
function pluginEnvironment(): NodeJS.ProcessEnv {
  const pass = ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "SSL_CERT_FILE"];
  const env: NodeJS.ProcessEnv = { INSTALL_METHOD: "local", PYTHONUNBUFFERED: "1" };
  for (const name of pass) if (process.env[name] !== undefined) env[name] = process.env[name];
  return env;
}

async function residentBytes(pid: number): Promise<number | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
    return kb ? Number(kb) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

const lastLines = (text: string) => text.trim().split("\n").slice(-5).join("\n");
