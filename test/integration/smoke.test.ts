/**
 * The post-deploy smoke test (`npm run smoke`, scripts/smoke.ts) as a user runs it, against the
 * real local daemon over HTTP, with the inner-API stand-in the script serves as the daemon's
 * DIFY_INNER_API_URL. Every path must pass, and a broken one must make it exit non-zero.
 */
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestDaemon, TEST_KEY, type TestDaemon } from "../support/local-daemon.js";
import { expectEveryPathPassed } from "../support/smoke-output.js";

const SMOKE = fileURLToPath(new URL("../../scripts/smoke.ts", import.meta.url));
const INNER_KEY = "smoke-inner-api-key";

let daemon: TestDaemon;
let standInPort: number;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.on("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });
}

/** `npm run smoke -- <args>`: the script's exit code and output. */
function smoke(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", SMOKE, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    child.on("close", (code) => resolve({ code, output }));
  });
}

beforeAll(async () => {
  standInPort = await freePort();
  daemon = await startTestDaemon({
    DIFY_INNER_API_URL: `http://127.0.0.1:${standInPort}`,
    DIFY_INNER_API_KEY: INNER_KEY,
  });
});
afterAll(async () => daemon?.stop());

describe("npm run smoke against the local daemon", () => {
  it("passes every path: health, auth, upload, install, stream, backwards call, endpoint, storage over 64 KiB, a 5 MB request, uninstall", async () => {
    const { code, output } = await smoke([
      "--url",
      daemon.url,
      "--key",
      TEST_KEY,
      "--inner-api-stand-in",
      `127.0.0.1:${standInPort}`,
      "--inner-api-key",
      INNER_KEY,
    ]);
    console.log(output);
    expect(code, output).toBe(0);
    expectEveryPathPassed(output);
    // Plugin paths report a cold and a warm timing.
    expect(output).toMatch(/^PASS {2}stream +cold +\d+ ms {2}warm +\d+ ms/m);
    expect(output).toMatch(/^10 passed, 0 failed$/m);
  }, 600_000);

  it("exits non-zero and says which path failed when the daemon refuses its key", async () => {
    const { code, output } = await smoke([
      "--url",
      daemon.url,
      "--key",
      "not-the-daemon-key",
      "--skip",
      "backwards,endpoint",
    ]);
    expect(code).toBe(1);
    expect(output).toMatch(/^PASS {2}health /m);
    expect(output).toMatch(/^FAIL {2}auth .*the key was refused/m);
    expect(output).toMatch(/^FAIL {2}stream .*not run: needs the install/m);
  }, 120_000);
});
