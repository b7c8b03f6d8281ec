/**
 * Remote debugging against the real local daemon and the real SDK: a plugin started with
 * INSTALL_METHOD=remote dials the debugging server with its tenant's key, shows up as a "remote"
 * installation, serves dispatches over the socket, and disappears when it exits.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { type AddressInfo, connect, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { LocalPluginRuntime } from "../../src/adapters/local/local-plugin-runtime.js";
import { startRemoteDebuggingServer } from "../../src/adapters/local/remote-debugging-server.js";
import { buildSdkVenv, type SdkVenv } from "../support/lambda-sandboxes.js";
import { readEvents, startTestDaemon, type TestDaemon } from "../support/local-daemon.js";

const ECHO_TOOL = fileURLToPath(new URL("../fixtures/plugins/echo-tool", import.meta.url));
const TENANT = "5b0a3f4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b";

let d: TestDaemon;
let debugging: Server;
let venv: SdkVenv;
let port: number;

function startPlugin(key: string): ChildProcess {
  const child = spawn(venv.python, ["-m", "main"], {
    cwd: ECHO_TOOL,
    env: {
      PATH: process.env.PATH,
      INSTALL_METHOD: "remote",
      REMOTE_INSTALL_URL: `127.0.0.1:${port}`,
      REMOTE_INSTALL_KEY: key,
      PYTHONUNBUFFERED: "1",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.resume();
  child.stderr?.resume();
  return child;
}

async function listed(): Promise<Array<{ plugin_id: string; runtime_type: string; plugin_unique_identifier: string }>> {
  const body = (await (await d.call(`/plugin/${TENANT}/management/list?page=1&page_size=100`)).json()) as {
    data: { list: Array<{ plugin_id: string; runtime_type: string; plugin_unique_identifier: string }> };
  };
  return body.data.list;
}

async function until<T>(probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A raw client: sends `lines`, answers with everything the server wrote until it closed (or 10 s). */
function exchange(serverPort: number, lines: unknown[]): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(serverPort, "127.0.0.1");
    let text = "";
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(text);
    };
    const timer = setTimeout(done, 10_000);
    socket.on("data", (chunk: Buffer) => (text += chunk.toString("utf8")));
    socket.on("close", done);
    socket.on("error", done);
    socket.on("connect", () => socket.write(lines.map((l) => `${JSON.stringify(l)}\n`).join("")));
  });
}

/** A debugging server of its own with a small connection limit. */
async function limitedServer(maxConnections: number): Promise<{ server: Server; port: number }> {
  const server = await startRemoteDebuggingServer(d.daemon.remotePlugins, d.daemon.runtime as LocalPluginRuntime, {
    host: "127.0.0.1",
    port: 0,
    lineMaxBytes: d.daemon.config.pluginLineMaxBytes,
    maxConnections,
  });
  return { server, port: (server.address() as AddressInfo).port };
}

beforeAll(async () => {
  venv = buildSdkVenv({
    uv: inject("uvPath"),
    python: inject("pythonPath"),
    requirements: join(ECHO_TOOL, "requirements.txt"),
  });
  d = await startTestDaemon({ PLUGIN_REMOTE_INSTALLING_ENABLED: "true" });
  if (!(d.daemon.runtime instanceof LocalPluginRuntime)) throw new Error("expected the local runtime");
  debugging = await startRemoteDebuggingServer(d.daemon.remotePlugins, d.daemon.runtime, {
    host: "127.0.0.1",
    port: 0,
    lineMaxBytes: d.daemon.config.pluginLineMaxBytes,
    maxConnections: d.daemon.config.remoteInstallingMaxConn,
  });
  port = (debugging.address() as AddressInfo).port;
}, 600_000);

afterAll(async () => {
  debugging?.close();
  await d?.stop();
  venv?.remove();
});

describe("remote debugging", () => {
  it("gives a tenant one stable key", async () => {
    const first = (await (await d.call(`/plugin/${TENANT}/debugging/key`, { method: "POST" })).json()) as {
      code: number;
      data: { key: string };
    };
    const second = (await (await d.call(`/plugin/${TENANT}/debugging/key`, { method: "POST" })).json()) as {
      data: { key: string };
    };
    expect(first.code).toBe(0);
    expect(first.data.key).toMatch(/.{16,}/);
    expect(second.data.key).toBe(first.data.key);
    const other = (await (await d.call(`/plugin/other-tenant/debugging/key`, { method: "POST" })).json()) as {
      data: { key: string };
    };
    expect(other.data.key).not.toBe(first.data.key);
  });

  it("installs a connected SDK plugin as remote, dispatches to it, and removes it when it exits", async () => {
    const { data } = (await (await d.call(`/plugin/${TENANT}/debugging/key`, { method: "POST" })).json()) as {
      data: { key: string };
    };
    const plugin = startPlugin(data.key);
    try {
      const entry = await until(async () => (await listed()).find((p) => p.plugin_id === "fixtures/echo-tool"));
      expect(entry.runtime_type).toBe("remote");
      expect(entry.plugin_unique_identifier).toMatch(/^fixtures\/echo-tool:0\.0\.1@[a-f0-9]{64}$/);

      const tools = (await (await d.call(`/plugin/${TENANT}/management/tools?page=1&page_size=10`)).json()) as {
        data: Array<{ provider: string; declaration: { identity: { icon: string } } }>;
      };
      const echo = tools.data.find((t) => t.provider === "echo");
      expect(echo?.declaration.identity.icon).toMatch(/^[a-f0-9]{64}\.svg$/);
      const icon = await d.call(`/plugin/${TENANT}/asset/${echo?.declaration.identity.icon}`);
      expect(await icon.text()).toContain("<svg");

      const res = await d.call(`/plugin/${TENANT}/dispatch/tool/invoke`, {
        method: "POST",
        headers: { "x-plugin-id": "fixtures/echo-tool" },
        json: {
          user_id: "u1",
          data: {
            provider: "echo",
            tool: "echo",
            credentials: {},
            credential_type: "api-key",
            tool_parameters: { text: "over tcp" },
          },
        },
      });
      const events = await readEvents(res);
      expect(events.every((e) => e.code === 0)).toBe(true);
      expect(JSON.stringify(events)).toContain("over tcp");
    } finally {
      plugin.kill("SIGKILL");
    }
    await until(
      async () => ((await listed()).some((p) => p.plugin_id === "fixtures/echo-tool") ? undefined : true),
      30_000,
    );
  }, 120_000);

  it("does not register a plugin that presents a wrong key", async () => {
    const plugin = startPlugin("not-a-key");
    const exited = new Promise<void>((resolve) => plugin.once("exit", () => resolve()));
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
    expect((await listed()).some((p) => p.plugin_id === "fixtures/echo-tool")).toBe(false);
    plugin.kill("SIGKILL");
  }, 30_000);

  it("turns away a plugin past PLUGIN_REMOTE_INSTALLING_MAX_CONN with upstream's busy answer, and takes one once a plugin leaves", async () => {
    const { data } = (await (await d.call(`/plugin/${TENANT}/debugging/key`, { method: "POST" })).json()) as {
      data: { key: string };
    };
    const limited = await limitedServer(1);
    const register = [
      { type: "handshake", data: { key: data.key } },
      { type: "tool_declaration", data: [{}] },
      { type: "end", data: null },
    ];
    const previousPort = port;
    port = limited.port;
    const plugin = startPlugin(data.key);
    port = previousPort;
    try {
      await until(async () => ((await listed()).some((p) => p.runtime_type === "remote") ? true : undefined));
      expect(await exchange(limited.port, register)).toBe("server is busy now, please try again later\n");
      plugin.kill("SIGKILL");
      await until(async () => ((await listed()).some((p) => p.runtime_type === "remote") ? undefined : true));
      // The slot is free again: this registration gets as far as its (empty) manifest.
      expect(await exchange(limited.port, register)).toMatch(/^register failed, invalid manifest detected/);
    } finally {
      plugin.kill("SIGKILL");
      limited.server.close();
    }
  }, 120_000);

  it("answers connections past the limit that have not registered with the busy line, holding nothing for them", async () => {
    const limited = await limitedServer(2);
    const silent: Socket[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        const socket = connect(limited.port, "127.0.0.1");
        socket.on("error", () => undefined);
        await new Promise((r) => socket.once("connect", r));
        silent.push(socket);
      }
      await new Promise((r) => setTimeout(r, 100));
      const wrongKey = [{ type: "handshake", data: { key: "not-a-key" } }];
      expect(await exchange(limited.port, wrongKey)).toBe("server is busy now, please try again later\n");
      for (const socket of silent) socket.destroy();
      await new Promise((r) => setTimeout(r, 200));
      // Accepted again: the handshake itself is answered.
      expect(await exchange(limited.port, wrongKey)).toBe("handshake failed, invalid key\n");
    } finally {
      for (const socket of silent) socket.destroy();
      limited.server.close();
    }
  }, 30_000);

  it("tells each of a flood of refused connections it is busy, and holds at most 64 of them open meanwhile", async () => {
    const limited = await limitedServer(1);
    const open = () => new Promise<number>((r) => limited.server.getConnections((_, n) => r(n)));
    const holder = connect(limited.port, "127.0.0.1");
    holder.on("error", () => undefined);
    await new Promise((r) => holder.once("connect", r));
    await new Promise((r) => setTimeout(r, 100));
    // Peers that never close their side: each is told, and the server closes them in its own time.
    const peers: Socket[] = [];
    try {
      const told = await Promise.all(
        Array.from(
          { length: 150 },
          () =>
            new Promise<string>((resolve) => {
              const socket = connect({ port: limited.port, host: "127.0.0.1", allowHalfOpen: true });
              peers.push(socket);
              let said = "";
              socket.on("data", (c: Buffer) => {
                said += c.toString("utf8");
              });
              socket.on("error", () => undefined);
              socket.on("end", () => resolve(said));
            }),
        ),
      );
      expect(told.every((said) => said === "server is busy now, please try again later\n")).toBe(true);
      // While the told ones linger (for their words to arrive), the server holds no more than 64 of them…
      expect(await open()).toBeLessThanOrEqual(1 + 64);
      // …and none once the linger is over.
      await new Promise((r) => setTimeout(r, 700));
      expect(await open()).toBe(1);
    } finally {
      for (const socket of [holder, ...peers]) socket.destroy();
      limited.server.close();
    }
  }, 30_000);
});
