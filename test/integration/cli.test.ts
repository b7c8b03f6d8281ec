/**
 * The operator CLI as an operator runs it (a separate process, the package's own entry) against
 * a real local daemon: install with progress until the task ends, list, tasks, logs, verify,
 * uninstall, JSON output, and errors that say what is wrong (a refused key, an unreachable URL).
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { packFixture } from "../support/fixture-packages.js";
import { readEvents, startTestDaemon, TEST_KEY, type TestDaemon } from "../support/local-daemon.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const T = "0b5e7a1c-3f00-4d00-8e00-0000000000c3";

let d: TestDaemon;
let work: string;
let echoPackage: string;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", join(root, "src/cli/main.ts"), ...args],
      {
        cwd: root,
        env: {
          ...process.env,
          PLUGIN_DAEMON_URL: d.url,
          PLUGIN_DAEMON_KEY: TEST_KEY,
          DIFY_TENANT_ID: T,
          DATA_DIR: d.dataDir,
          ...env,
        },
        timeout: 240_000,
      },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

beforeAll(async () => {
  d = await startTestDaemon();
  work = mkdtempSync(join(tmpdir(), "cli-test-"));
  echoPackage = join(work, "echo-tool.difypkg");
  // The echo tool, saying hello on stderr as it starts (what `logs` shows).
  const main = readFileSync(join(root, "test/fixtures/plugins/echo-tool/main.py"), "utf8").replace(
    "plugin.run()",
    'print("echo-tool says hello on stderr", file=sys.stderr, flush=True)\n    plugin.run()',
  );
  writeFileSync(echoPackage, await packFixture("echo-tool", { files: { "main.py": `import sys\n${main}` } }));
}, 600_000);
afterAll(async () => {
  await d?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("dify-plugin-daemon-aws CLI", () => {
  it("lists its commands in --help", async () => {
    const run = await cli(["--help"]);
    expect(run.code).toBe(0);
    for (const command of ["plugins", "tasks", "logs", "upgrade-check", "verify", "smoke", "migrate"])
      expect(run.stdout).toContain(command);
    const plugins = await cli(["plugins", "--help"]);
    for (const command of ["list", "install", "uninstall"]) expect(plugins.stdout).toContain(command);
  });

  it("installs a package file, showing the task's progress until it ends", { timeout: 300_000 }, async () => {
    const run = await cli(["plugins", "install", echoPackage]);
    expect(run.code, run.stderr).toBe(0);
    const lines = run.stderr.trim().split("\n");
    expect(lines[0]).toMatch(/^uploading echo-tool\.difypkg \(\d+ KiB\)$/);
    expect(lines).toContainEqual(
      expect.stringMatching(/^starting the install of fixtures\/echo-tool:0\.0\.1@[0-9a-f]{64}$/),
    );
    expect(lines.at(-1)).toMatch(/^installed fixtures\/echo-tool:0\.0\.1@[0-9a-f]{64}$/);
    // A second install of the same package is a no-op the daemon reports at once.
    const again = await cli(["plugins", "install", echoPackage, "--json"]);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ status: "success", already_installed: true });
  });

  it("lists the installed plugins and the tasks, as text and as JSON", async () => {
    const list = await cli(["plugins", "list"]);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/^PLUGIN_ID\s+VERSION\s+INSTALLATION_ID/);
    expect(list.stdout).toMatch(/fixtures\/echo-tool\s+0\.0\.1\s+[0-9a-f-]{36}\s+package\s+local/);
    const json = JSON.parse((await cli(["plugins", "list", "--json"])).stdout) as Array<{ plugin_id: string }>;
    expect(json.map((p) => p.plugin_id)).toEqual(["fixtures/echo-tool"]);
    const tasks = await cli(["tasks"]);
    expect(tasks.code, tasks.stderr).toBe(0);
    expect(tasks.stdout).toMatch(/success\s+fixtures\/echo-tool:0\.0\.1/);
  });

  it("prints a local plugin's stderr", async () => {
    const events = await readEvents(
      await d.call(`/plugin/${T}/dispatch/tool/invoke`, {
        method: "POST",
        headers: { "x-plugin-id": "fixtures/echo-tool" },
        json: {
          user_id: "u",
          data: { provider: "echo", tool: "echo", credentials: {}, tool_parameters: { text: "x" } },
        },
      }),
    );
    expect(events[0]?.code).toBe(0);
    const run = await cli(["logs", "fixtures/echo-tool", "--json"]);
    expect(run.code, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout) as { file: string; lines: string[] };
    expect(out.file).toContain(join(d.dataDir, "plugins", "fixtures"));
    expect(out.lines).toContain("echo-tool says hello on stderr");
    const text = await cli(["logs", "fixtures/echo-tool", "-n", "1"]);
    expect(text.stdout.trim().split("\n")).toHaveLength(1);
    const unknown = await cli(["logs", "fixtures/not-installed"]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("no log for fixtures/not-installed");
  });

  it("runs a tenant's auto-upgrade check now and says what it decided", async () => {
    const run = await cli(["upgrade-check"]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^(ok|skipped|failed): .+ \(strategy \w+\)/);
    const json = JSON.parse((await cli(["upgrade-check", "--json"])).stdout) as { tenant_id: string; trigger: string };
    expect(json).toMatchObject({ tenant_id: T, trigger: "manual" });
  });

  it("verifies a package without a daemon", async () => {
    const run = await cli(["verify", echoPackage, "--json"], { PLUGIN_DAEMON_URL: "http://127.0.0.1:1" });
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ name: "echo-tool", version: "0.0.1", signature: "none or invalid" });
    expect((await cli(["verify", echoPackage, "--require-signature"])).code).toBe(1);
    const broken = join(work, "broken.difypkg");
    writeFileSync(broken, "not a zip");
    const bad = await cli(["verify", broken]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error: /);
  });

  it("says so when the daemon refuses the key", async () => {
    const run = await cli(["plugins", "list"], { PLUGIN_DAEMON_KEY: "not-the-key" });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("refused the key (HTTP 401)");
    const json = await cli(["tasks", "--json", "--key", "still-wrong"]);
    expect(JSON.parse(json.stdout).error).toContain("refused the key");
  });

  it("says so when the URL is unreachable", async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    const run = await cli(["plugins", "list", "--url", url]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`cannot reach the daemon at ${url}: connection refused`);
  });

  it("asks for a tenant when none is given", async () => {
    const run = await cli(["plugins", "list"], { DIFY_TENANT_ID: "" });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("--tenant");
  });

  it("uninstalls by plugin id", async () => {
    const run = await cli(["plugins", "uninstall", "fixtures/echo-tool"]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^uninstalled fixtures\/echo-tool:0\.0\.1@/);
    expect(JSON.parse((await cli(["plugins", "list", "--json"])).stdout)).toEqual([]);
  });
});
