/**
 * The local daemon's process-level net: an error that escapes every handler (thrown in a timer
 * callback, or a rejection nobody handles) is logged with its request, that request fails with
 * upstream's -500 envelope, and the daemon keeps serving. The daemon runs as a child process,
 * with a store method replaced by one that fails that way (no route does any more).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, it } from "vitest";

const root = fileURLToPath(new URL("../..", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "safety-net-"));
let child: ChildProcess;
let url: string;
let output = "";

beforeAll(async () => {
  const script = join(dir, "daemon.mts");
  writeFileSync(
    script,
    `
const { installSafetyNet } = await import(${JSON.stringify(join(root, "src/local/safety-net.ts"))});
installSafetyNet();
const { sharedDaemon } = await import(${JSON.stringify(join(root, "src/daemon.ts"))});
const { startLocalServer } = await import(${JSON.stringify(join(root, "src/local/server.ts"))});
const daemon = await sharedDaemon();
let calls = 0;
// A bug outside any promise chain the handler awaits: the request would hang, or Node would exit.
daemon.groups.dispatch.installations.get = () => new Promise(() => {
  calls += 1;
  if (calls % 2 === 1) setTimeout(() => { throw new Error("thrown in a timer"); }, 5);
  else void Promise.reject(new Error("rejected, unhandled"));
});
const server = await startLocalServer(daemon, { host: "127.0.0.1", port: 0 });
console.log("PORT " + server.address().port);
`,
  );
  child = spawn(process.execPath, ["--import", "tsx", script], {
    cwd: root,
    env: {
      ...process.env,
      SERVER_KEY: "k",
      DATA_DIR: join(dir, "data"),
      STORE_BACKEND: "local",
      AUTO_UPGRADE_ENABLED: "false",
      LOG_LEVEL: "error",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.on("data", (c: Buffer) => (output += c.toString()));
  child.stderr?.on("data", (c: Buffer) => (output += c.toString()));
  const port = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`daemon did not start: ${output}`)), 30_000);
    const check = () => {
      const m = /PORT (\d+)/.exec(output);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      } else setTimeout(check, 50);
    };
    check();
  });
  url = `http://127.0.0.1:${port}`;
}, 60_000);
afterAll(() => {
  child?.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

const dispatch = () =>
  fetch(`${url}/plugin/t1/dispatch/tool/invoke`, {
    method: "POST",
    headers: { "x-api-key": "k", "x-plugin-id": "a/b", "content-type": "application/json" },
    body: JSON.stringify({ user_id: "u", data: {} }),
  });

it.each([
  ["an exception thrown in a callback", "uncaught exception"],
  ["an unhandled rejection", "unhandled rejection"],
])("%s fails its request with -500, is logged with it, and the daemon keeps serving", async (_case, kind) => {
  const res = await dispatch();
  expect(res.status).toBe(500);
  const envelope = (await res.json()) as { code: number; message: string };
  expect(envelope.code).toBe(-500);
  expect((await fetch(`${url}/health/check`)).status).toBe(200);
  expect(child.exitCode).toBeNull();
  const logged = output.split("\n").find((line) => line.includes(`"${kind}; the daemon keeps serving"`));
  expect(logged, output).toBeDefined();
  expect(logged).toContain('"request":{"method":"POST","path":"/plugin/t1/dispatch/tool/invoke"}');
});
