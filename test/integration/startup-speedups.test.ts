/**
 * The start-up savings the local daemon writes into each plugin's virtualenv
 * (src/adapters/local/startup-speedups.ts): in place once a plugin has started, also for a
 * plugin installed before they existed, and with the same answers as without them.
 */
import { execFile } from "node:child_process";
import { existsSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pluginDirectory } from "../../src/adapters/local/plugin-environment.js";
import type { PluginUniqueIdentifier } from "../../src/domain/identifier.js";
import { packFixture } from "../support/fixture-packages.js";
import { installPackage, lifecyclePid, startTestDaemon, type TestDaemon } from "../support/local-daemon.js";

const run = promisify(execFile);
const T = "33333333-aaaa-4000-8000-000000000002";
const IDLE_S = 2;
let d: TestDaemon;
let uid: PluginUniqueIdentifier;
let dir: string;

beforeAll(async () => {
  d = await startTestDaemon({ PLUGIN_IDLE_TIMEOUT: String(IDLE_S) });
  uid = await installPackage(d, T, await packFixture("lifecycle-tool"));
  dir = pluginDirectory(join(d.dataDir, "plugins"), uid);
}, 300_000);
afterAll(async () => {
  await d?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const whoami = () => lifecyclePid(d, T);

function savingsFiles(): string[] {
  const lib = join(dir, ".venv", "lib");
  return readdirSync(lib).flatMap((py) =>
    ["_dify_daemon_startup.pth", "_dify_daemon_startup.py"].map((f) => join(lib, py, "site-packages", f)),
  );
}

/** What the plugin's own interpreter sees once the savings have run, and the YAML both parsers give. */
async function probe(): Promise<{ entryPointsOnce: boolean; libyaml: boolean; sameYaml: boolean }> {
  const script = [
    "import glob, json, importlib.metadata as m, yaml",
    "files = glob.glob('**/*.yaml', recursive=True)",
    "fast = [yaml.safe_load(open(f)) for f in files]",
    "pure = [yaml.load(open(f), yaml.SafeLoader) for f in files]",
    "print(json.dumps({'entryPointsOnce': hasattr(m.entry_points, '__wrapped__'),",
    "  'libyaml': hasattr(yaml.safe_load, '__wrapped__'), 'sameYaml': bool(files) and fast == pure}))",
  ].join("\n");
  const { stdout } = await run(join(dir, ".venv", "bin", "python"), ["-c", script], { cwd: dir });
  return JSON.parse(stdout);
}

describe("plugin start-up savings", () => {
  it("are in a started plugin's virtualenv: entry points read once, declarations parsed by LibYAML to the same objects", async () => {
    await whoami();
    for (const f of savingsFiles()) expect(existsSync(f)).toBe(true);
    expect(await probe()).toEqual({ entryPointsOnce: true, libyaml: true, sameYaml: true });
  });

  it("reach a plugin installed before they existed at its next start", async () => {
    const first = await whoami();
    for (const f of savingsFiles()) rmSync(f);
    expect(await probe()).toMatchObject({ entryPointsOnce: false, libyaml: false });
    await sleep(IDLE_S * 1000 + 1000);
    const second = await whoami();
    expect(second).not.toBe(first);
    for (const f of savingsFiles()) expect(existsSync(f)).toBe(true);
    expect(await probe()).toMatchObject({ entryPointsOnce: true, libyaml: true });
  });
});
