/**
 * How the operator commands reach a daemon: the local one or a deployed URL, over the same HTTP
 * API Dify uses. Settings come from options, then the environment (the names Dify itself uses
 * for them), then the local daemon's defaults. Failures say what to fix: an unreachable URL, a
 * key the daemon refused, or the daemon's own error message.
 */
import { type Command, Option } from "commander";
// The key the local daemon uses without SERVER_KEY.
import { LOCAL_DEFAULT_KEY } from "../daemon-key.js";

export const DEFAULT_URL = "http://127.0.0.1:5002";

export interface ConnectionOptions {
  url?: string;
  key?: string;
  tenant?: string;
  json?: boolean;
}

/** Adds --url, --key, --tenant and --json to a command. */
export function withConnection(command: Command, { tenant = true } = {}): Command {
  command
    .addOption(
      new Option("--url <url>", "the daemon's URL (a deployed stack's PluginDaemonUrl)").env("PLUGIN_DAEMON_URL"),
    )
    .addOption(
      new Option("--key <key>", "the daemon key (Dify's PLUGIN_DAEMON_KEY; the daemon's SERVER_KEY)").env(
        "PLUGIN_DAEMON_KEY",
      ),
    );
  if (tenant) command.addOption(new Option("--tenant <id>", "the Dify workspace (tenant) id").env("DIFY_TENANT_ID"));
  return command.option("--json", "print JSON instead of text");
}

/** What went wrong, in words an operator can act on; the CLI prints it and exits 1. */
export class CliError extends Error {}

export interface Envelope<T> {
  code: number;
  message: string;
  data: T;
}

export class DaemonClient {
  readonly url: string;
  private readonly key: string;

  constructor(options: ConnectionOptions) {
    this.url = (options.url ?? DEFAULT_URL).replace(/\/+$/, "");
    if (!/^https?:\/\//.test(this.url)) throw new CliError(`--url must be an http(s) URL, got "${this.url}"`);
    this.key = options.key ?? process.env.SERVER_KEY ?? LOCAL_DEFAULT_KEY;
  }

  tenantPath(tenant: string | undefined, path: string): string {
    if (!tenant) throw new CliError("a tenant is needed: give --tenant <workspace id> or set DIFY_TENANT_ID");
    return `/plugin/${encodeURIComponent(tenant)}/management/${path}`;
  }

  /** A request with the key; the raw response (for routes without an envelope). */
  async raw(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    headers.set("x-api-key", this.key);
    let res: Response;
    try {
      res = await fetch(`${this.url}${path}`, { ...init, headers, signal: init.signal ?? AbortSignal.timeout(60_000) });
    } catch (err) {
      throw new CliError(
        `cannot reach the daemon at ${this.url}: ${reason(err)}. Is it running, and is --url (PLUGIN_DAEMON_URL) right?`,
      );
    }
    if (res.status === 401) {
      throw new CliError(
        `the daemon at ${this.url} refused the key (HTTP 401): give the daemon's key with --key or PLUGIN_DAEMON_KEY`,
      );
    }
    if (res.status === 403 && res.headers.get("x-amzn-errortype")) {
      throw new CliError(
        `API Gateway refused the request (HTTP 403, ${res.headers.get("x-amzn-errortype")}): is --url the stack's PluginDaemonUrl, stage included?`,
      );
    }
    return res;
  }

  /** A request answered with upstream's {code, message, data} envelope; its data, or the daemon's error. */
  async call<T>(path: string, init: RequestInit & { json?: unknown } = {}): Promise<T> {
    const { json, ...rest } = init;
    const request: RequestInit =
      json === undefined
        ? rest
        : {
            ...rest,
            method: rest.method ?? "POST",
            body: JSON.stringify(json),
            headers: { ...rest.headers, "content-type": "application/json" },
          };
    const res = await this.raw(path, request);
    const text = await res.text();
    let body: Envelope<T>;
    try {
      body = JSON.parse(text) as Envelope<T>;
    } catch {
      throw new CliError(
        `${this.url}${path} answered HTTP ${res.status} with something that is not the daemon's JSON: ${text.slice(0, 200)}`,
      );
    }
    if (res.status === 404 && (body as { code?: unknown }).code === "not_found") {
      throw new CliError(`${this.url} has no route ${path.split("?")[0]}: is it a Dify plugin daemon of this version?`);
    }
    if (body.code !== 0)
      throw new CliError(`the daemon answered HTTP ${res.status}: ${body.message || JSON.stringify(body)}`);
    return body.data;
  }
}

function reason(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  if (cause?.code === "ECONNREFUSED") return "connection refused";
  if (cause?.code === "ENOTFOUND") return "host not found";
  if ((err as Error).name === "TimeoutError") return "no answer within 60 s";
  return cause?.message ?? (err as Error).message;
}

/** Runs a command's work: prints a CliError (or any error) as one line and sets exit status 1. */
// A command's work resolves with its exit code, or nothing for 0.
// biome-ignore lint/suspicious/noConfusingVoidType: commands that always succeed return nothing
export async function runCommand(json: boolean | undefined, work: () => Promise<number | void>): Promise<void> {
  try {
    process.exitCode = (await work()) ?? 0;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`error: ${message}\n`);
    if (json) process.stdout.write(`${JSON.stringify({ error: message })}\n`);
    process.exitCode = 1;
  }
}

/** Prints rows as aligned columns. */
export function table(rows: Array<Record<string, string | number>>, columns: string[]): string {
  if (rows.length === 0) return "(none)";
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => cell.padEnd(widths[i]!))
      .join("  ")
      .trimEnd();
  return [
    line(columns.map((c) => c.toUpperCase())),
    ...rows.map((r) => line(columns.map((c) => String(r[c] ?? "")))),
  ].join("\n");
}

export const print = (text: string): void => void process.stdout.write(`${text}\n`);
