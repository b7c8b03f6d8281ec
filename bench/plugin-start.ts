/**
 * Spawn-to-ready of a typical tool plugin under the local runtime's supervisor: the time from
 * starting the process to its first heartbeat, which is what the first call after an idle stop
 * waits for. The plugin (the echo-tool fixture) is installed once the way the daemon installs it
 * (virtualenv, dependencies, precompiled bytecode), then started and stopped N times.
 *
 *   npx tsx bench/plugin-start.ts [--runs 10]
 *
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { Command } from "commander";
import { LocalPluginRuntime } from "../src/adapters/local/local-plugin-runtime.js";
import { pluginDirectory } from "../src/adapters/local/plugin-environment.js";
import { PluginProcess } from "../src/adapters/local/plugin-process.js";
import { loadDeclaration } from "../src/domain/declaration.js";
import { uniqueIdentifier } from "../src/domain/identifier.js";
import { DEFAULT_PACKAGE_LIMITS, readPackage } from "../src/domain/package-archive.js";
import { packFixture } from "../test/support/fixture-packages.js";
import { resultsDir } from "./lib/paths.js";
import { percentiles } from "./lib/stats.js";
import { resolveToolchain } from "./lib/toolchain.js";

const options = new Command().option("--runs <n>", "starts to time", "10").parse().opts<{ runs: string }>();
const runs = Number(options.runs);

const work = mkdtempSync(join(tmpdir(), "plugin-start-"));
try {
  const archive = await readPackage(await packFixture("echo-tool"), DEFAULT_PACKAGE_LIMITS);
  const declaration = loadDeclaration(
    (path) => archive.entries.find((e) => e.name === path)?.data,
    archive.entries.map((e) => e.name),
  );
  const uid = uniqueIdentifier(`fixtures/echo-tool:0.0.1@${"0".repeat(64)}`);
  const toolchain = await resolveToolchain((line) => console.error(line));
  const runtime = new LocalPluginRuntime({
    workDir: work,
    pythonPath: toolchain.python,
    uvPath: toolchain.uv,
    envInitTimeoutSeconds: 120,
  });
  const installStarted = Date.now();
  await runtime.install({ uniqueIdentifier: uid, declaration, archive: async () => archive }, () => undefined);
  const installMs = Date.now() - installStarted;
  await runtime.close();

  const loadBefore = loadavg()[0]!;
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const plugin = new PluginProcess({
      uniqueIdentifier: uid,
      directory: pluginDirectory(work, uid),
      entrypoint: "main",
      memoryBytes: 1 << 30,
    });
    const started = performance.now();
    await plugin.start();
    samples.push(performance.now() - started);
    await plugin.stop();
  }
  const result = {
    scenario: "spawn-to-ready, echo-tool fixture",
    runs,
    install_ms: installMs,
    spawn_to_ready_ms: percentiles(samples),
    python: toolchain.pythonVersion,
    load_average_1m: { before: loadBefore, after: loadavg()[0]! },
    cores: (await import("node:os")).cpus().length,
    at: new Date().toISOString(),
  };
  console.log(JSON.stringify(result, null, 2));
  writeFileSync(join(resultsDir, "plugin-start.json"), `${JSON.stringify(result, null, 2)}\n`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
