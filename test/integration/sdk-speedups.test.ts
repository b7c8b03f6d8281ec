/**
 * The SDK savings the local daemon writes into each plugin's virtualenv
 * (src/adapters/local/sdk-speedups.ts): in place once a plugin has started, also for a plugin
 * installed before they existed (or with an earlier version of them), with the same answers as
 * without them, and without the SDK's busy loop once its stdin has ended.
 */
import { execFile, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pluginDirectory } from "../../src/adapters/local/plugin-environment.js";
import type { PluginUniqueIdentifier } from "../../src/domain/identifier.js";
import { packFixture } from "../support/fixture-packages.js";
import { installPackage, lifecyclePid, readEvents, startTestDaemon, type TestDaemon } from "../support/local-daemon.js";

const run = promisify(execFile);
const T = "33333333-aaaa-4000-8000-000000000002";
const IDLE_S = 2;
let d: TestDaemon;
let uid: PluginUniqueIdentifier;
let dir: string;
let echoDir: string;

beforeAll(async () => {
  d = await startTestDaemon({ PLUGIN_IDLE_TIMEOUT: String(IDLE_S) });
  uid = await installPackage(d, T, await packFixture("lifecycle-tool"));
  dir = pluginDirectory(join(d.dataDir, "plugins"), uid);
  echoDir = pluginDirectory(join(d.dataDir, "plugins"), await installPackage(d, T, await packFixture("echo-tool")));
}, 300_000);
afterAll(async () => {
  await d?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const whoami = () => lifecyclePid(d, T);

const sitePackages = (pluginDir: string) =>
  readdirSync(join(pluginDir, ".venv", "lib")).map((py) => join(pluginDir, ".venv", "lib", py, "site-packages"));

function savingsFiles(module = "_dify_daemon_speedups"): string[] {
  return sitePackages(dir).flatMap((site) => [`${module}.pth`, `${module}.py`].map((f) => join(site, f)));
}

interface Probe {
  entryPointsOnce: boolean;
  libyaml: boolean;
  sameYaml: boolean;
  oneTypeAdapter: boolean;
  /** The same in the OpenAI-compatible model base, which built one per streamed chunk. */
  oneTypeAdapterPerChunk: boolean;
  stdinOnHub: boolean;
}

/** What the plugin's own interpreter sees once the savings have run, and the YAML both parsers give. */
async function probe(): Promise<Probe> {
  const script = [
    "import glob, json, importlib.metadata as m, yaml",
    "import dify_plugin",
    "from dify_plugin.core.server.stdio import request_reader as r",
    "from dify_plugin.interfaces.model.openai_compatible import llm as oai",
    "from typing import Any",
    "files = glob.glob('**/*.yaml', recursive=True)",
    "fast = [yaml.safe_load(open(f)) for f in files]",
    "pure = [yaml.load(open(f), yaml.SafeLoader) for f in files]",
    "print(json.dumps({'entryPointsOnce': hasattr(m.entry_points, '__wrapped__'),",
    "  'libyaml': hasattr(yaml.safe_load, '__wrapped__'), 'sameYaml': bool(files) and fast == pure,",
    "  'oneTypeAdapter': r.TypeAdapter(dict[str, Any]) is r.TypeAdapter(dict[str, Any]),",
    "  'oneTypeAdapterPerChunk': oai.TypeAdapter(dict[str, Any]) is oai.TypeAdapter(dict[str, Any]),",
    "  'stdinOnHub': hasattr(r.StdioRequestReader._read_async, '__wrapped__')}))",
  ].join("\n");
  const { stdout } = await run(join(dir, ".venv", "bin", "python"), ["-c", script], { cwd: dir });
  return JSON.parse(stdout);
}

const ALL_ON: Probe = {
  entryPointsOnce: true,
  libyaml: true,
  sameYaml: true,
  oneTypeAdapter: true,
  oneTypeAdapterPerChunk: true,
  stdinOnHub: true,
};

async function echo(text: string): Promise<string | undefined> {
  const res = await d.call(`/plugin/${T}/dispatch/tool/invoke`, {
    method: "POST",
    headers: { "x-plugin-id": "fixtures/echo-tool" },
    json: {
      user_id: "u",
      data: { provider: "echo", tool: "echo", credentials: {}, credential_type: "api-key", tool_parameters: { text } },
    },
  });
  const events = await readEvents(res);
  const message = events
    .map((e) => e.data as { type?: string; message?: { text?: string } })
    .find((m) => m?.type === "text");
  return message?.message?.text;
}

/** CPU seconds (user + system) a process has used so far. */
function cpuSeconds(pid: number): number {
  const [, afterName = ""] = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ");
  const fields = afterName.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

describe("plugin SDK savings", () => {
  it("are in a started plugin's virtualenv: entry points read once, LibYAML to the same objects, one TypeAdapter per type, stdin read on the hub", async () => {
    await whoami();
    for (const f of savingsFiles()) expect(existsSync(f)).toBe(true);
    expect(await probe()).toEqual(ALL_ON);
  });

  it("reach a plugin installed before they existed, or with an earlier version of them, at its next start", async () => {
    const first = await whoami();
    for (const f of savingsFiles()) rmSync(f);
    // What the first version of the savings left in a virtualenv: a module under another name.
    for (const site of sitePackages(dir)) {
      writeFileSync(join(site, "_dify_daemon_startup.py"), "");
      writeFileSync(join(site, "_dify_daemon_startup.pth"), "import _dify_daemon_startup\n");
    }
    expect(await probe()).toMatchObject({
      entryPointsOnce: false,
      libyaml: false,
      oneTypeAdapter: false,
      oneTypeAdapterPerChunk: false,
    });
    await sleep(IDLE_S * 1000 + 1000);
    const second = await whoami();
    expect(second).not.toBe(first);
    for (const f of savingsFiles()) expect(existsSync(f)).toBe(true);
    for (const f of savingsFiles("_dify_daemon_startup")) expect(existsSync(f)).toBe(false);
    expect(await probe()).toEqual(ALL_ON);
  });

  it("pass requests larger than a pipe's buffer whole, also many at once, through the hub's stdin reads", async () => {
    const texts = Array.from({ length: 12 }, (_, i) => `${i}:${"λx.".repeat(60_000 + i * 7_000)}`);
    expect(await Promise.all(texts.map(echo))).toEqual(texts);
  });

  it("keep a plugin whose stdin has ended from spinning (the SDK alone loops on the empty reads at full CPU)", async () => {
    const child = spawn(join(echoDir, ".venv", "bin", "python"), ["-m", "main"], {
      cwd: echoDir,
      env: { ...process.env, INSTALL_METHOD: "local", PYTHONUNBUFFERED: "1" },
      stdio: ["ignore", "pipe", "ignore"],
    });
    try {
      // Started once it has written its first line (the declaration); measure from there.
      await new Promise<void>((resolve, reject) => {
        child.stdout.once("data", () => resolve());
        child.once("exit", (code) => reject(new Error(`plugin exited (${code}) before writing anything`)));
      });
      const before = cpuSeconds(child.pid!);
      await sleep(2000);
      expect(cpuSeconds(child.pid!) - before).toBeLessThan(0.5);
    } finally {
      child.kill("SIGKILL");
    }
  });
});
