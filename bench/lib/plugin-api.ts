/**
 * The daemon HTTP API calls the benchmark makes, identical for both daemons: package upload,
 * install by identifier, task polling, and the dispatch requests Dify sends for tool invocations.
 */
export const TENANT = "5ee0b3a1-bbbb-4ccc-8ddd-0123456789ab";
export const USER = "bench-user";

export interface DaemonEndpoint {
  /** e.g. http://127.0.0.1:5002 */
  baseUrl: string;
  key: string;
  /** The X-Plugin-ID dispatch requests carry (author/name). */
  pluginId?: string;
}

async function call(d: DaemonEndpoint, path: string, init: RequestInit = {}): Promise<unknown> {
  const headers = new Headers(init.headers);
  headers.set("x-api-key", d.key);
  const res = await fetch(`${d.baseUrl}${path}`, { ...init, headers, signal: AbortSignal.timeout(60_000) });
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`${init.method ?? "GET"} ${path}: HTTP ${res.status}, not JSON: ${text.slice(0, 300)}`);
  }
  const envelope = body as { code?: number; message?: string };
  if (!res.ok || envelope.code !== 0)
    throw new Error(`${init.method ?? "GET"} ${path}: HTTP ${res.status} ${text.slice(0, 500)}`);
  return (body as { data: unknown }).data;
}

export async function uploadPackage(d: DaemonEndpoint, pkg: Uint8Array): Promise<string> {
  const form = new FormData();
  form.set("dify_pkg", new Blob([pkg]), "plugin.difypkg");
  form.set("verify_signature", "false");
  const data = (await call(d, `/plugin/${TENANT}/management/install/upload/package`, {
    method: "POST",
    body: form,
  })) as { unique_identifier: string };
  return data.unique_identifier;
}

export async function installIdentifier(
  d: DaemonEndpoint,
  uniqueIdentifier: string,
): Promise<{ taskId: string; allInstalled: boolean }> {
  const data = (await call(d, `/plugin/${TENANT}/management/install/identifiers`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ plugin_unique_identifiers: [uniqueIdentifier], source: "package", metas: [{}] }),
  })) as { task_id: string; all_installed: boolean };
  return { taskId: data.task_id, allInstalled: data.all_installed };
}

export async function waitForTask(d: DaemonEndpoint, taskId: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const task = (await call(d, `/plugin/${TENANT}/management/install/tasks/${taskId}`)) as {
      status: string;
      plugins: Array<{ status: string; message: string }>;
    };
    if (task.status === "success") return;
    if (task.status === "failed")
      throw new Error(
        `install task failed: ${task.plugins
          .map((p) => p.message)
          .join("; ")
          .slice(0, 2000)}`,
      );
    if (Date.now() > deadline) throw new Error(`install task still ${task.status} after ${timeoutMs / 1000}s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function listPluginIds(d: DaemonEndpoint): Promise<string[]> {
  const data = (await call(d, `/plugin/${TENANT}/management/list?page=1&page_size=256`)) as {
    list: Array<{ plugin_id: string }>;
  };
  return data.list.map((p) => p.plugin_id);
}

/** A debugging key for the remote (TCP) plugin runtime. */
export async function debuggingKey(d: DaemonEndpoint): Promise<string> {
  const data = (await call(d, `/plugin/${TENANT}/debugging/key`, { method: "POST" })) as { key: string };
  return data.key;
}

export const dispatchPath = `/plugin/${TENANT}/dispatch/tool/invoke`;

export function dispatchHeaders(d: DaemonEndpoint): Record<string, string> {
  return { "content-type": "application/json", "x-api-key": d.key, "x-plugin-id": d.pluginId ?? "fixtures/echo-tool" };
}

const toolBody = (tool: string, parameters: Record<string, unknown>) =>
  JSON.stringify({
    user_id: USER,
    data: { provider: "echo", tool, credentials: {}, credential_type: "api-key", tool_parameters: parameters },
  });

/** `echo` answers with 5 events (text, json, variable, two blob chunks). */
export const ECHO_BODY = toolBody("echo", { text: "hello" });
export const ECHO_EVENTS = 5;
export const STREAM_COUNT = 100;
export const STREAM_BODY = toolBody("stream_chunks", { count: STREAM_COUNT, delay_ms: 0 });

/** One dispatch of `echo`; resolves true when the answer is a complete, error-free stream. */
export async function echoOnce(d: DaemonEndpoint): Promise<{ ok: boolean; detail: string }> {
  try {
    const res = await fetch(`${d.baseUrl}${dispatchPath}`, {
      method: "POST",
      headers: dispatchHeaders(d),
      body: ECHO_BODY,
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    const events = text.split("\n").filter((l) => l.startsWith("data: ")).length;
    const ok = res.status === 200 && !text.includes('"code":-') && events === ECHO_EVENTS;
    return { ok, detail: ok ? "" : `HTTP ${res.status}: ${text.slice(0, 300)}` };
  } catch (err) {
    return { ok: false, detail: err instanceof Error ? err.message : String(err) };
  }
}
