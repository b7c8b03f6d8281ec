/**
 * Pieces shared by the benchmarks that run real official Dify plugins (langgenius/dify-official-plugins)
 * on both daemons: the plugin list, what a plugin declares, packing with upstream's packager,
 * install through the HTTP API, dispatch calls and how their answers are classified, and finding a
 * plugin's processes under a daemon.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { parse as parseYaml } from "yaml";
import type { RunningDaemon } from "./our-daemon.js";
import { cacheDir } from "./paths.js";
import { TENANT, USER } from "./plugin-api.js";
import { MiB, processTree, rssBytes } from "./proc.js";
import { round } from "./stats.js";

const run = promisify(execFile);

/**
 * The plugins bench/official-plugins.ts runs by default, all of which packed, installed and answered on both
 * daemons here (bench/results/official-plugins.json); no tools/code, time, webscraper or dalle in the
 * repository (see tools/openai, judge0ce, e2b).
 */
export const DEFAULT_PLUGINS = [
  "tools/regex",
  "tools/json_process",
  "tools/yahoo",
  "tools/novitaai",
  "tools/qa_chunk",
  "tools/chart",
  "tools/wikipedia",
  "tools/arxiv",
  "tools/google",
  "tools/duckduckgo",
  "tools/jina",
  "tools/firecrawl",
  "tools/comfyui",
  "tools/openai",
  "tools/spark",
  "tools/stability",
  "tools/tavily",
  "tools/maths",
  "tools/echarts",
  "tools/qrcode",
  "tools/general_chunk",
  "tools/parent_child_chunk",
  "tools/hackernews",
  "tools/judge0ce",
  "tools/e2b",
  "tools/dicom_reader",
  "models/openai",
  "models/anthropic",
  "models/gemini",
  "models/ollama",
  "models/deepseek",
  "models/tongyi",
  "models/azure_openai",
  "models/bedrock",
  "models/vertex_ai",
  "models/xinference",
  "extensions/slack_bot",
  "extensions/openai_compatible",
  "agent-strategies/cot_agent",
  "agent-strategies/self_refine_agent",
  "datasources/firecrawl_datasource",
  "datasources/jina_datasource",
  "datasources/notion_datasource",
  "triggers/rsshub_trigger",
  "triggers/github_trigger",
];

// ---------------------------------------------------------------------------------------------
// What a plugin declares

export type Category = "tool" | "model" | "endpoint" | "agent-strategy" | "datasource" | "trigger";

export interface PluginInfo {
  path: string;
  pluginId: string;
  version: string;
  category: Category;
  /** Provider (or strategy provider) name the dispatch body carries. */
  provider: string;
  /** Tool, strategy, datasource or event names. */
  items: string[];
  manifestMemoryBytes: number;
  hasUvLock: boolean;
  /** Model providers: provider-level credentials exist (else model-level only). */
  providerCredentials: boolean;
  endpoints: Array<{ path: string; method: string }>;
}

export type Yaml = Record<string, unknown>;
export const readYaml = (file: string): Yaml => (parseYaml(readFileSync(file, "utf8")) ?? {}) as Yaml;
export const identityName = (y: Yaml) => String((y.identity as Yaml | undefined)?.name ?? "");

export function describePlugin(root: string, path: string): PluginInfo {
  const dir = join(root, path);
  const manifest = readYaml(join(dir, "manifest.yaml"));
  const plugins = (manifest.plugins ?? {}) as Record<string, string[] | undefined>;
  const first = (key: string) => {
    const file = plugins[key]?.[0];
    return file ? { file, yaml: readYaml(join(dir, file)) } : undefined;
  };
  const names = (y: Yaml, key: string) =>
    ((y[key] as string[] | undefined) ?? []).map((f) => {
      try {
        return identityName(readYaml(join(dir, f)));
      } catch {
        return "";
      }
    });
  const info: PluginInfo = {
    path,
    pluginId: `${String(manifest.author)}/${String(manifest.name)}`,
    version: String(manifest.version),
    category: "tool",
    provider: "",
    items: [],
    manifestMemoryBytes: Number((manifest.resource as Yaml | undefined)?.memory ?? 0),
    hasUvLock: existsSync(join(dir, "uv.lock")),
    providerCredentials: false,
    endpoints: [],
  };
  let p: ReturnType<typeof first>;
  if ((p = first("tools"))) {
    Object.assign(info, { category: "tool", provider: identityName(p.yaml), items: names(p.yaml, "tools") });
  } else if ((p = first("models"))) {
    Object.assign(info, {
      category: "model",
      provider: String(p.yaml.provider ?? ""),
      providerCredentials: Boolean(p.yaml.provider_credential_schema),
    });
  } else if ((p = first("agent_strategies"))) {
    Object.assign(info, {
      category: "agent-strategy",
      provider: identityName(p.yaml),
      items: names(p.yaml, "strategies"),
    });
  } else if ((p = first("datasources"))) {
    Object.assign(info, {
      category: "datasource",
      provider: identityName(p.yaml),
      items: names(p.yaml, "datasources"),
    });
  } else if ((p = first("triggers"))) {
    Object.assign(info, { category: "trigger", provider: identityName(p.yaml), items: names(p.yaml, "events") });
  } else if ((p = first("endpoints"))) {
    const group = p.yaml;
    const endpoints = ((group.endpoints as string[] | undefined) ?? []).map((f) => {
      const e = readYaml(join(dir, f));
      return { path: String(e.path ?? "/"), method: String(e.method ?? "POST") };
    });
    Object.assign(info, { category: "endpoint", provider: info.pluginId, endpoints });
  }
  return info;
}

// ---------------------------------------------------------------------------------------------
// The call each plugin gets

export type Outcome = "ok" | "plugin-error" | "no-network" | "daemon-error" | "no-answer";
export const ANSWERED: ReadonlySet<Outcome> = new Set(["ok", "plugin-error", "no-network"]);

export interface CallResult {
  outcome: Outcome;
  answered: boolean;
  ms: number;
  detail: string;
}

export interface Target {
  name: "ours" | "upstream";
  daemon: RunningDaemon;
  pluginId: string;
  uniqueIdentifier: string;
  /** Endpoint plugins: the hook, once set up. */
  hookId?: string;
}

export interface Probe {
  /** What is called, for the results. */
  what: string;
  call(t: Target, timeoutMs: number): Promise<CallResult>;
}

export const NETWORK =
  /Name or service not known|Temporary failure in name resolution|getaddrinfo|NameResolution|Failed to resolve|Could not resolve|No address associated|Max retries exceeded|ConnectError|ConnectionError|Connection refused|Network is unreachable|ConnectTimeout|timed out|Cannot connect to host|nodename nor servname|Errno -[23]\b|Errno 11001/i;

export function classifyError(errorType: string, message: string): Outcome {
  // Our daemon's own errors carry PluginRuntimeError; upstream's are daemon error types.
  if (errorType === "PluginRuntimeError" || /^PluginDaemon|^PluginNotFound|^PluginUniqueIdentifier/.test(errorType))
    return "daemon-error";
  return NETWORK.test(message) ? "no-network" : "plugin-error";
}

export const clip = (s: string, n = 300) => (s.length > n ? `${s.slice(0, n)}…` : s);

/** Reads a dispatch answer (SSE `data: <envelope>` lines, or one JSON envelope) and classifies it. */
export function classifyDispatch(status: number, text: string): { outcome: Outcome; detail: string } {
  const lines = text
    .split("\n")
    .filter((l) => l.startsWith("data: "))
    .map((l) => l.slice(6));
  const docs = lines.length ? lines : [text];
  const payloads: string[] = [];
  for (const doc of docs) {
    let env: { code?: number; message?: string; data?: unknown };
    try {
      env = JSON.parse(doc) as typeof env;
    } catch {
      return { outcome: status === 200 ? "daemon-error" : "no-answer", detail: clip(`HTTP ${status}: ${text}`) };
    }
    if (env.code === 0) {
      payloads.push(JSON.stringify(env.data));
      continue;
    }
    const message = String(env.message ?? "");
    let inner: { error_type?: string; message?: string } | undefined;
    try {
      inner = JSON.parse(message) as typeof inner;
    } catch {
      inner = undefined;
    }
    if (inner && typeof inner === "object" && inner.error_type) {
      const outcome = classifyError(inner.error_type, String(inner.message ?? ""));
      return { outcome, detail: clip(`${inner.error_type}: ${String(inner.message ?? "")}`) };
    }
    return { outcome: "daemon-error", detail: clip(`code ${String(env.code)}: ${message}`) };
  }
  if (status !== 200 || payloads.length === 0)
    return { outcome: "daemon-error", detail: clip(`HTTP ${status}, ${payloads.length} chunks: ${text}`) };
  return { outcome: "ok", detail: clip(`${payloads.length} chunk(s): ${payloads.join(" | ")}`, 240) };
}

export async function timed(fn: () => Promise<{ outcome: Outcome; detail: string }>): Promise<CallResult> {
  const started = performance.now();
  try {
    const r = await fn();
    return { ...r, answered: ANSWERED.has(r.outcome), ms: round(performance.now() - started, 0) };
  } catch (err) {
    const e = err as Error;
    return {
      outcome: "no-answer",
      answered: false,
      ms: round(performance.now() - started, 0),
      detail: clip(`${e.name}: ${e.message}`),
    };
  }
}

export function dispatchProbe(action: string, data: Record<string, unknown>, what = action): Probe {
  return {
    what,
    call: (t, timeoutMs) =>
      timed(async () => {
        const res = await fetch(`${t.daemon.baseUrl}/plugin/${TENANT}/dispatch/${action}`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-api-key": t.daemon.key, "x-plugin-id": t.pluginId },
          body: JSON.stringify({ user_id: USER, data }),
          signal: AbortSignal.timeout(timeoutMs),
        });
        return classifyDispatch(res.status, await res.text());
      }),
  };
}

export async function management(
  d: RunningDaemon,
  method: "GET" | "POST",
  path: string,
  body?: unknown,
  timeoutMs = 60_000,
): Promise<unknown> {
  const res = await fetch(`${d.baseUrl}/plugin/${TENANT}/${path}`, {
    method,
    headers: { "x-api-key": d.key, ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  let env: { code?: number; message?: string; data?: unknown };
  try {
    env = JSON.parse(text) as typeof env;
  } catch {
    throw new Error(`${method} ${path}: HTTP ${res.status}, not JSON: ${clip(text)}`);
  }
  if (env.code !== 0)
    throw new Error(
      `${method} ${path}: HTTP ${res.status} code ${String(env.code)}: ${clip(String(env.message ?? text), 1500)}`,
    );
  return env.data;
}

// ---------------------------------------------------------------------------------------------
// Plugin processes

export const checksumOf = (uid: string) => uid.split("@").pop() ?? "";

export function cwdOf(pid: number): string {
  try {
    return readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    return "";
  }
}

/** Python processes under the daemon whose working directory is this plugin's (the installed plugin directory). */
export function pluginPids(d: RunningDaemon, uid: string): number[] {
  const checksum = checksumOf(uid);
  return processTree(d.rootPid)
    .filter((s) => s.comm.startsWith("python") && checksum && cwdOf(s.pid).includes(checksum))
    .map((s) => s.pid);
}

/** The plugin's process: the one whose parent is not itself one of the plugin's processes. */
export function pluginLeader(d: RunningDaemon, uid: string): number | undefined {
  const pids = pluginPids(d, uid);
  const tree = processTree(d.rootPid);
  const ppid = new Map(tree.map((s) => [s.pid, s.ppid]));
  return pids.find((p) => !pids.includes(ppid.get(p) ?? -1));
}

export const rssMiB = (pids: number[]) => round(pids.reduce((sum, p) => sum + (rssBytes(p) ?? 0), 0) / MiB, 1);
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitFor<T>(fn: () => T | undefined, timeoutMs: number, intervalMs = 20): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) return undefined;
    await sleep(intervalMs);
  }
}

// ---------------------------------------------------------------------------------------------
// Install

export interface InstallResult {
  ok: boolean;
  seconds: number;
  message: string;
  uniqueIdentifier?: string;
  stage: string;
  firstOnThisPackage: boolean;
}

export async function install(t: { daemon: RunningDaemon }, pkg: Buffer, timeoutMs: number): Promise<InstallResult> {
  const started = performance.now();
  const seconds = () => round((performance.now() - started) / 1000, 1);
  let stage = "upload";
  try {
    const form = new FormData();
    form.set("dify_pkg", new Blob([pkg]), "plugin.difypkg");
    form.set("verify_signature", "false");
    const res = await fetch(`${t.daemon.baseUrl}/plugin/${TENANT}/management/install/upload/package`, {
      method: "POST",
      headers: { "x-api-key": t.daemon.key },
      body: form,
      signal: AbortSignal.timeout(120_000),
    });
    const env = JSON.parse(await res.text()) as {
      code: number;
      message?: string;
      data?: { unique_identifier: string };
    };
    if (env.code !== 0 || !env.data)
      return {
        ok: false,
        seconds: seconds(),
        message: `upload: ${String(env.message)}`,
        stage,
        firstOnThisPackage: true,
      };
    const uid = env.data.unique_identifier;
    stage = "install";
    const task = (await management(t.daemon, "POST", "management/install/identifiers", {
      plugin_unique_identifiers: [uid],
      source: "package",
      metas: [{}],
    })) as { task_id: string; all_installed: boolean };
    if (task.all_installed)
      return {
        ok: true,
        seconds: seconds(),
        message: "already installed",
        uniqueIdentifier: uid,
        stage,
        firstOnThisPackage: true,
      };
    stage = "task";
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = (await management(t.daemon, "GET", `management/install/tasks/${task.task_id}`)) as {
        status: string;
        plugins: Array<{ status: string; message: string }>;
      };
      const message = s.plugins.map((p) => p.message).join("; ");
      if (s.status === "success")
        return { ok: true, seconds: seconds(), message, uniqueIdentifier: uid, stage, firstOnThisPackage: true };
      if (s.status === "failed")
        return {
          ok: false,
          seconds: seconds(),
          message: clip(message, 2000),
          uniqueIdentifier: uid,
          stage,
          firstOnThisPackage: true,
        };
      if (Date.now() > deadline)
        return {
          ok: false,
          seconds: seconds(),
          message: `still ${s.status} after ${timeoutMs / 1000}s: ${clip(message)}`,
          uniqueIdentifier: uid,
          stage,
          firstOnThisPackage: true,
        };
      await sleep(250);
    }
  } catch (err) {
    return {
      ok: false,
      seconds: seconds(),
      message: clip(`${stage}: ${(err as Error).message}`, 2000),
      stage,
      firstOnThisPackage: true,
    };
  }
}

// ---------------------------------------------------------------------------------------------
// Packing

export interface PackResult {
  ok: boolean;
  seconds: number;
  bytes?: number;
  message: string;
  file?: string;
}

/**
 * Where a plugin's package is kept: per plugins commit under the benchmark cache (packing takes
 * seconds to minutes each), or in `workDir` when the commit is not known.
 */
export function packageFile(path: string, pluginsCommit: string | undefined, workDir: string): string {
  const dir = pluginsCommit ? join(cacheDir(), "bench", "idle-plugins", "packages", pluginsCommit) : workDir;
  mkdirSync(dir, { recursive: true });
  return join(dir, `${path.replace("/", "__")}.difypkg`);
}

export async function pack(packager: string, uvDir: string, pluginDir: string, outFile: string): Promise<PackResult> {
  const started = performance.now();
  try {
    const { stdout, stderr } = await run(packager, ["plugin", "package", pluginDir, "-o", outFile], {
      cwd: dirname(outFile),
      // The packager runs `uv export` for plugins that ship only pyproject.toml + uv.lock.
      env: { ...process.env, PATH: `${uvDir}:${process.env.PATH ?? ""}` },
      timeout: 300_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    const seconds = round((performance.now() - started) / 1000, 1);
    if (!existsSync(outFile)) return { ok: false, seconds, message: clip(`${stdout}${stderr}`, 1000) };
    return { ok: true, seconds, bytes: statSync(outFile).size, message: "", file: outFile };
  } catch (err) {
    const e = err as Error & { stderr?: string; stdout?: string };
    return {
      ok: false,
      seconds: round((performance.now() - started) / 1000, 1),
      message: clip(`${e.stdout ?? ""}${e.stderr ?? e.message}`, 1000),
    };
  }
}
