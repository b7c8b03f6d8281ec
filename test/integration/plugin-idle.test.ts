/**
 * Installed-but-idle plugins cost nothing locally: a plugin process stops after
 * PLUGIN_IDLE_TIMEOUT without calls and starts again on the next call (calls arriving during the
 * start wait for it), except the plugins in PLUGIN_KEEP_WARM, which the daemon also starts with itself;
 * at most PLUGIN_LOCAL_LAUNCHING_CONCURRENT plugins start at once; and a plugin left running
 * between calls hardly wakes the daemon.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { LocalPluginRuntime, type LocalPluginRuntimeOptions } from "../../src/adapters/local/local-plugin-runtime.js";
import { packFixture } from "../support/fixture-packages.js";
import { installPackage, lifecyclePid, startTestDaemon, type TestDaemon } from "../support/local-daemon.js";

const T = "33333333-aaaa-4000-8000-000000000001";
const IDLE_S = 2;
let d: TestDaemon;
let runtime: LocalPluginRuntime;
let lifecycle: string;
let echo: string;

beforeAll(async () => {
  d = await startTestDaemon({ PLUGIN_IDLE_TIMEOUT: String(IDLE_S), PLUGIN_KEEP_WARM: "fixtures/echo-tool" });
  runtime = d.daemon.runtime as LocalPluginRuntime;
  lifecycle = await installPackage(d, T, await packFixture("lifecycle-tool"));
  echo = await installPackage(d, T, await packFixture("echo-tool"));
}, 300_000);
afterAll(async () => {
  await d?.stop();
});

const whoami = () => lifecyclePid(d, T);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A second local runtime on the test daemon's plugins, as a restarted daemon would have. */
const runtimeOnSameData = (options: Pick<LocalPluginRuntimeOptions, "keepWarm" | "launchingConcurrency">) =>
  new LocalPluginRuntime({
    workDir: join(d.dataDir, "plugins"),
    pythonPath: inject("pythonPath"),
    uvPath: inject("uvPath"),
    envInitTimeoutSeconds: 60,
    ...options,
  });

describe("idle plugins", () => {
  it("stops a plugin after the idle timeout and starts it again on the next call", async () => {
    const first = await whoami();
    await sleep(IDLE_S * 1000 + 1000);
    expect(runtime.states()[lifecycle]).toBe("idle");
    expect(existsSync(`/proc/${first}`)).toBe(false);
    const started = Date.now();
    const second = await whoami();
    const firstCallMs = Date.now() - started;
    expect(second).not.toBe(first);
    console.log(`first call after idle: ${firstCallMs} ms`);
  });

  it("lets calls that arrive during the start wait for it and share one process", async () => {
    await sleep(IDLE_S * 1000 + 1000);
    expect(runtime.states()[lifecycle]).toBe("idle");
    const pids = await Promise.all(Array.from({ length: 5 }, () => whoami()));
    expect(new Set(pids).size).toBe(1);
  });

  it("keeps a plugin of PLUGIN_KEEP_WARM running however long it is idle", async () => {
    await sleep(IDLE_S * 1000 + 1000);
    expect(runtime.states()[echo]).toBe("running");
  });

  it("starts the kept-warm plugins with the daemon, and no other", async () => {
    const restarted = runtimeOnSameData({ keepWarm: ["fixtures/echo-tool"] });
    try {
      await restarted.recover();
      const deadline = Date.now() + 30_000;
      while (restarted.states()[echo] !== "running" && Date.now() < deadline) await sleep(50);
      expect(restarted.states()).toEqual({ [echo]: "running" });
    } finally {
      await restarted.close();
    }
  });

  it("starts no more plugins at once than PLUGIN_LOCAL_LAUNCHING_CONCURRENT; the others wait queued", async () => {
    const restarted = runtimeOnSameData({
      keepWarm: ["fixtures/echo-tool", "fixtures/lifecycle-tool"],
      launchingConcurrency: 1,
    });
    try {
      await restarted.recover();
      const seen = new Set<string>();
      let mostStarting = 0;
      const deadline = Date.now() + 60_000;
      for (;;) {
        const states = Object.values(restarted.states());
        for (const state of states) seen.add(state);
        mostStarting = Math.max(mostStarting, states.filter((s) => s === "starting").length);
        if ((states.length === 2 && states.every((s) => s === "running")) || Date.now() > deadline) break;
        await sleep(5);
      }
      expect(restarted.states()).toEqual({ [echo]: "running", [lifecycle]: "running" });
      expect(mostStarting).toBe(1);
      expect(seen).toContain("queued");
    } finally {
      await restarted.close();
    }
  });

  it("hardly wakes the daemon for a running plugin nobody calls", async () => {
    expect(runtime.states()[echo]).toBe("running");
    /** Times this process's threads went to sleep and were woken, all of them (the test daemon runs here). */
    const wakeUps = () =>
      readdirSync("/proc/self/task").reduce((sum, tid) => {
        const status = readFileSync(`/proc/self/task/${tid}/status`, "utf8");
        return sum + Number(/^voluntary_ctxt_switches:\s+(\d+)$/m.exec(status)?.[1] ?? 0);
      }, 0);
    // Past the 5 s after the last request in which event-loop delay is sampled for /metrics.
    await sleep(5500);
    const before = wakeUps();
    await sleep(2000);
    // The watchdog checks each plugin's memory four times a second. Read through libuv's thread
    // pool, that was 83 wake-ups in these 2 s with this file's two plugins running; read at once, 9.
    expect(wakeUps() - before).toBeLessThan(40);
  });
});
