/**
 * Starts the real local daemon (embedded store, disk blobs, Python subprocess plugins) on a
 * loopback port with a fresh data directory, configured through the environment like `npm start`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inject } from "vitest";
import { DiskBlobStore } from "../../src/adapters/local/disk-blob-store.js";
import { SqliteItemStore } from "../../src/adapters/local/sqlite-item-store.js";
import { type Daemon, sharedDaemon } from "../../src/daemon.js";
import { type PluginUniqueIdentifier, uniqueIdentifier } from "../../src/domain/identifier.js";
import { startLocalServer } from "../../src/local/server.js";
import { InstallTasks } from "../../src/stores/install-tasks.js";
import { Installations } from "../../src/stores/installations.js";
import { PluginSessions } from "../../src/stores/plugin-sessions.js";
import { PluginStorage } from "../../src/stores/plugin-storage.js";

export const TEST_KEY = "test-daemon-key";

export interface TestDaemon {
  url: string;
  daemon: Daemon;
  dataDir: string;
  /**
   * The daemon's stores, opened a second time on its data directory: what a test checks the
   * daemon wrote, or builds its own services on (the daemon hands its stores to nobody).
   */
  stores(): TestStores;
  /** fetch against the daemon with the key header set. */
  call(path: string, init?: RequestInit & { json?: unknown }): Promise<Response>;
  stop(): Promise<void>;
}

export interface TestStores {
  items: SqliteItemStore;
  installations: Installations;
  tasks: InstallTasks;
  pluginSessions: PluginSessions;
  pluginStorage: PluginStorage;
}

function openStores(dataDir: string): TestStores {
  const items = SqliteItemStore.inDirectory(dataDir);
  return {
    items,
    installations: new Installations(items),
    tasks: new InstallTasks(items),
    pluginSessions: new PluginSessions(items),
    pluginStorage: new PluginStorage(items, new DiskBlobStore(join(dataDir, "blobs"))),
  };
}

export async function startTestDaemon(env: Record<string, string> = {}): Promise<TestDaemon> {
  const dataDir = mkdtempSync(join(tmpdir(), "dify-daemon-test-"));
  Object.assign(process.env, {
    SERVER_KEY: TEST_KEY,
    DATA_DIR: dataDir,
    STORE_BACKEND: "local",
    FORCE_VERIFYING_SIGNATURE: "false",
    PYTHON_INTERPRETER_PATH: inject("pythonPath"),
    UV_PATH: inject("uvPath"),
    LOG_LEVEL: "warn",
    ...env,
  });
  const daemon = await sharedDaemon();
  const server = await startLocalServer(daemon, { host: "127.0.0.1", port: 0, maxBodyBytes: 64 * 1024 * 1024 });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  let stores: TestStores | undefined;
  return {
    url,
    daemon,
    dataDir,
    stores: () => (stores ??= openStores(dataDir)),
    call(path, init = {}) {
      const headers = new Headers(init.headers);
      if (!headers.has("x-api-key")) headers.set("x-api-key", TEST_KEY);
      let body = init.body;
      if (init.json !== undefined) {
        headers.set("content-type", "application/json");
        body = JSON.stringify(init.json);
      }
      return fetch(`${url}${path}`, { ...init, headers, body });
    },
    async stop() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await daemon.close();
      stores?.items.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Uploads package bytes the way Dify does (multipart, field dify_pkg). */
export function uploadForm(pkg: Uint8Array, verifySignature = false): FormData {
  const form = new FormData();
  form.set("dify_pkg", new Blob([pkg]), "plugin.difypkg");
  form.set("verify_signature", String(verifySignature));
  return form;
}

/** Polls an install task until it is terminal. */
export async function waitForTask(d: TestDaemon, tenant: string, taskId: string, timeoutMs = 180_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const body = (await (await d.call(`/plugin/${tenant}/management/install/tasks/${taskId}`)).json()) as {
      code: number;
      message: string;
      data: { status: string; plugins: Array<{ status: string; message: string }> };
    };
    if (body.code !== 0) throw new Error(`reading task ${taskId} failed: ${body.message}`);
    if (body.data.status === "success" || body.data.status === "failed") return body.data;
    if (Date.now() > deadline) throw new Error(`task ${taskId} still ${body.data.status}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Uploads a package and starts its install for a tenant, as Dify does; resolves with its identifier and task. */
export async function startInstall(
  d: Pick<TestDaemon, "call">,
  tenant: string,
  pkg: Uint8Array,
): Promise<{ uid: string; taskId: string }> {
  const up = (await (
    await d.call(`/plugin/${tenant}/management/install/upload/package`, { method: "POST", body: uploadForm(pkg) })
  ).json()) as {
    data: { unique_identifier: string };
  };
  const uid = up.data.unique_identifier;
  const started = (await (
    await d.call(`/plugin/${tenant}/management/install/identifiers`, {
      method: "POST",
      json: { plugin_unique_identifiers: [uid], source: "package" },
    })
  ).json()) as { data: { task_id: string } };
  return { uid, taskId: started.data.task_id };
}

/** Uploads a package and installs it for a tenant, as Dify does; resolves with its identifier once the task succeeded. */
export async function installPackage(d: TestDaemon, tenant: string, pkg: Uint8Array): Promise<PluginUniqueIdentifier> {
  const { uid, taskId } = await startInstall(d, tenant, pkg);
  const task = await waitForTask(d, tenant, taskId);
  if (task.status !== "success") throw new Error(`installing ${uid} failed: ${JSON.stringify(task)}`);
  return uniqueIdentifier(uid);
}

/** Reads an SSE dispatch body into its envelopes. */
export async function readEvents(res: Response): Promise<Array<{ code: number; message: string; data: unknown }>> {
  const text = await res.text();
  return text
    .split("\n")
    .filter((l) => l.startsWith("data: "))
    .map((l) => JSON.parse(l.slice(6)));
}

/** The pid of the lifecycle-tool fixture's process that answers a call to its `whoami` tool. */
export async function lifecyclePid(d: TestDaemon, tenant: string): Promise<number> {
  const res = await d.call(`/plugin/${tenant}/dispatch/tool/invoke`, {
    method: "POST",
    headers: { "x-plugin-id": "fixtures/lifecycle-tool" },
    json: {
      user_id: "u",
      data: { provider: "lifecycle", tool: "whoami", credentials: {}, credential_type: "api-key", tool_parameters: {} },
    },
  });
  const events = await readEvents(res);
  const json = events
    .map((e) => e.data as { type?: string; message?: { json_object?: { pid: number } } })
    .find((m) => m?.type === "json");
  if (!json) throw new Error(`no answer: ${JSON.stringify(events.at(-1))}`);
  return json.message!.json_object!.pid;
}
