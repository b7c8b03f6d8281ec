/**
 * Installs that always end, and install-time code that sees no secret: the real local daemon
 * as `npm start` runs it (its bundle, in a separate process, so it can be killed with SIGKILL
 * mid-install and started again on the same data directory), with a fixture whose dependency is built by a
 * backend that reports its environment, can sleep, and always fails.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { packFixture } from "../support/fixture-packages.js";
import { buildLocalBundle, type LocalBundle } from "../support/local-bundle.js";
import { startInstall as startTenantInstall } from "../support/local-daemon.js";

const KEY = "recovery-test-key";
const TENANT = "22222222-aaaa-4000-8000-000000000001";
/** Set in the daemon's environment: none of them may reach install-time code. */
const SECRETS = {
  SERVER_KEY: KEY,
  DIFY_INNER_API_KEY: "canary-inner-api-key",
  AWS_SECRET_ACCESS_KEY: "canary-aws-secret",
};

interface RunningDaemon {
  url: string;
  process: ChildProcess;
  call(path: string, init?: RequestInit & { json?: unknown }): Promise<Response>;
}

const dataDir = mkdtempSync(join(tmpdir(), "dify-recovery-"));
const running: ChildProcess[] = [];
let bundle: LocalBundle;
beforeAll(async () => {
  bundle = await buildLocalBundle();
});
afterAll(() => {
  for (const child of running) child.kill("SIGKILL");
  rmSync(dataDir, { recursive: true, force: true });
  bundle?.remove();
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function startDaemon(extraEnv: Record<string, string> = {}): Promise<RunningDaemon> {
  const port = await freePort();
  const child = spawn(process.execPath, bundle.nodeArgs, {
    env: {
      ...process.env,
      ...SECRETS,
      DATA_DIR: dataDir,
      SERVER_HOST: "127.0.0.1",
      SERVER_PORT: String(port),
      FORCE_VERIFYING_SIGNATURE: "false",
      PLUGIN_REMOTE_INSTALLING_ENABLED: "false",
      AUTO_UPGRADE_ENABLED: "false",
      PYTHON_INTERPRETER_PATH: inject("pythonPath"),
      UV_PATH: inject("uvPath"),
      LOG_LEVEL: "warn",
      ...extraEnv,
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  running.push(child);
  const url = `http://127.0.0.1:${port}`;
  const call = (path: string, init: RequestInit & { json?: unknown } = {}) => {
    const headers = new Headers(init.headers);
    headers.set("x-api-key", KEY);
    let body = init.body;
    if (init.json !== undefined) {
      headers.set("content-type", "application/json");
      body = JSON.stringify(init.json);
    }
    return fetch(`${url}${path}`, { ...init, headers, body });
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`daemon exited with ${child.exitCode}`);
    const up = await fetch(`${url}/health/check`).then(
      (r) => r.ok,
      () => false,
    );
    if (up) return { url, process: child, call };
    if (Date.now() > deadline) throw new Error("daemon did not start");
    await new Promise((r) => setTimeout(r, 100));
  }
}

type Task = { status: string; plugins: Array<{ status: string; message: string }> };

async function task(d: RunningDaemon, taskId: string): Promise<Task> {
  const body = (await (await d.call(`/plugin/${TENANT}/management/install/tasks/${taskId}`)).json()) as { data: Task };
  return body.data;
}

async function until<T>(
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const startInstall = async (d: RunningDaemon, pkg: Uint8Array): Promise<string> =>
  (await startTenantInstall(d, TENANT, pkg)).taskId;

const alive = (pid: number) =>
  existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.startsWith("Z");
/** Staging directories (`plugins/<scope>/<name>.building-…`). Read two levels, not recursively: the daemon
 * removes a staging tree while this looks, and a recursive read fails on a subdirectory that vanished. */
const stagingDirs = () => {
  const list = (dir: string) => {
    try {
      return readdirSync(dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw error;
    }
  };
  const root = join(dataDir, "plugins");
  return list(root).flatMap((scope) =>
    list(join(root, scope))
      .filter((name) => name.includes(".building-"))
      .map((name) => `${scope}/${name}`),
  );
};

describe("install tasks across a daemon killed with SIGKILL", () => {
  it("fails the interrupted task soon after restart, leaves no installer process or staging directory", async () => {
    const pidFile = join(dataDir, "probe.pid");
    const pkg = await packFixture("build-probe-tool", {
      files: { "probe/pid_file": pidFile, "probe/sleep_seconds": "120" },
    });
    const first = await startDaemon();
    const taskId = await startInstall(first, pkg);
    // The build backend is running (and sleeping) once it wrote its pid.
    const probePid = await until(
      () => (existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8")) : undefined),
      120_000,
      "build backend started",
    );
    expect((await task(first, taskId)).status).toBe("running");
    expect(stagingDirs().length).toBe(1);

    first.process.kill("SIGKILL");
    const killedAt = Date.now();
    await until(() => (alive(probePid) ? undefined : true), 5000, "installer processes ended with the daemon");
    const orphanMs = Date.now() - killedAt;

    const restartedAt = Date.now();
    const second = await startDaemon();
    const failed = await until(
      async () => {
        const t = await task(second, taskId);
        return t.status === "failed" ? t : undefined;
      },
      10_000,
      "interrupted task failed",
    );
    const terminalMs = Date.now() - restartedAt;
    expect(failed.plugins[0]!.message).toContain("the plugin daemon stopped while this install was running");
    expect(stagingDirs()).toEqual([]);
    console.log(
      `build backend gone ${orphanMs} ms after SIGKILL; interrupted task failed ${terminalMs} ms after restart`,
    );
    second.process.kill("SIGTERM");
  });
});

describe("install-time code", () => {
  it("runs a package's build backend with the plugins' scrubbed environment, without the daemon's secrets", async () => {
    const d = await startDaemon();
    const taskId = await startInstall(d, await packFixture("build-probe-tool", { version: "0.0.2" }));
    const done = await until(
      async () => {
        const t = await task(d, taskId);
        return t.status === "failed" || t.status === "success" ? t : undefined;
      },
      120_000,
      "probe install ended",
    );
    // The backend ran and reported (the install fails by design)…
    const message = done.plugins[0]!.message;
    expect(message).toContain("ENV-PROBE");
    expect(message).toContain("PATH");
    // …and none of the daemon's secrets, nor any variable that looks like one, reached it.
    for (const [name, value] of Object.entries(SECRETS)) {
      expect(message).not.toContain(value);
      expect(message).not.toContain(name);
    }
    expect(message).not.toContain("ENV-PROBE secret");
    d.process.kill("SIGTERM");
  });
});

describe("the install timeout", () => {
  it("stops an install that runs past PLUGIN_INSTALL_TIMEOUT, kills its installer and fails the task", async () => {
    const pidFile = join(dataDir, "slow-probe.pid");
    const d = await startDaemon({ PLUGIN_INSTALL_TIMEOUT: "0.1" });
    const started = Date.now();
    const taskId = await startInstall(
      d,
      await packFixture("build-probe-tool", {
        version: "0.0.3",
        files: { "probe/pid_file": pidFile, "probe/sleep_seconds": "120" },
      }),
    );
    const failed = await until(
      async () => {
        const t = await task(d, taskId);
        return t.status === "failed" ? t : undefined;
      },
      30_000,
      "timed-out task failed",
    );
    expect(failed.plugins[0]!.message).toContain("install timed out after 0.1 minutes (PLUGIN_INSTALL_TIMEOUT)");
    expect(Date.now() - started).toBeLessThan(15_000);
    const probePid = Number(readFileSync(pidFile, "utf8"));
    await until(() => (alive(probePid) ? undefined : true), 5000, "build backend stopped");
    await until(() => (stagingDirs().length === 0 ? true : undefined), 5000, "staging directory removed");
    d.process.kill("SIGTERM");
  });
});
