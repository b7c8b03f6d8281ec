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
import { logger } from "../../logger.js";
import type { InvokeOptions, PluginRequest, SessionOutput } from "../../ports/plugin-runtime.js";
import { PluginConnection } from "./plugin-connection.js";

export interface PluginProcessOptions {
  uniqueIdentifier: string;
  directory: string;
  entrypoint: string;
  memoryBytes: number;
  readyTimeoutMs?: number;
  /** The process is restarted if it goes this long without a heartbeat (upstream: 120 s). */
  heartbeatTimeoutMs?: number;
}

const STDERR_TAIL = 2000;
/** How often resident memory and heartbeats are checked: a plugin can overshoot its limit for this long. */
const WATCHDOG_INTERVAL_MS = 250;

export class PluginProcess {
  private child: ChildProcessWithoutNullStreams | undefined;
  private ready: Promise<void> | undefined;
  /** Sessions over the current child's stdin/stdout. */
  private readonly connection: PluginConnection;
  private stderrTail = "";
  private lastHeartbeat = 0;
  private watchdog: NodeJS.Timeout | undefined;
  private stopping = false;

  constructor(private readonly options: PluginProcessOptions) {
    this.connection = new PluginConnection(options.uniqueIdentifier, (line) => this.child?.stdin.write(line));
  }

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
    return this.connection.invoke(request, options, this.start());
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
      lines.on("line", (line) =>
        this.connection.handleLine(line, () => {
          this.lastHeartbeat = Date.now();
          clearTimeout(readyTimer);
          resolve();
        }),
      );
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
    this.connection.closeAll(reason);
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
