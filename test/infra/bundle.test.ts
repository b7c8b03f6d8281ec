/**
 * scripts/bundle.mjs on small fixtures: local-only modules never load at init, lazily loaded
 * code is split out, the credential chain is environment-only, and sizes are reported. And on the
 * real handlers: each one's code loaded at init stays within the budget (`--check`).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot } from "./synth.js";

const fixtures = join(repoRoot, "test", "infra", "fixtures");

function bundle(functionsDir: string, ...args: string[]) {
  const outDir = mkdtempSync(join(tmpdir(), "bundle-test-"));
  const run = spawnSync(
    process.execPath,
    [join(repoRoot, "scripts", "bundle.mjs"), "--functions-dir", functionsDir, "--out-dir", outDir, ...args],
    { encoding: "utf8" },
  );
  return { ...run, outDir };
}

describe("scripts/bundle.mjs", () => {
  it("fails when a handler would load a local-only module at init", () => {
    const run = bundle(join(fixtures, "eager"));
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/sqlite-at-init loads local-only module "better-sqlite3" at init/);
  });

  it("splits code reached through import() into chunks, keeping local-only modules out of init", () => {
    const run = bundle(join(fixtures, "lazy"), "--quiet");
    expect(run.status, run.stderr).toBe(0);
    const dir = join(run.outDir, "switch");
    const index = readFileSync(join(dir, "index.mjs"), "utf8");
    expect(index.startsWith('import { createRequire as __bundleCreateRequire } from "node:module";')).toBe(true);
    expect(index).not.toContain("better-sqlite3");
    const chunks = readdirSync(join(dir, "chunks")).filter((f) => f.endsWith(".mjs"));
    expect(chunks.some((f) => readFileSync(join(dir, "chunks", f), "utf8").includes('from"better-sqlite3"'))).toBe(
      true,
    );
    expect(run.stderr).toMatch(/switch: local-only "better-sqlite3" is only in a lazily loaded chunk/);

    const sizes = JSON.parse(readFileSync(join(run.outDir, "sizes.json"), "utf8"));
    expect(sizes.budgetBytes).toBe(500 * 1024);
    const s = sizes.functions.switch;
    expect(s.initBytes).toBeGreaterThan(10_000);
    expect(s.bytes).toBeGreaterThan(s.initBytes);
    expect(s.withinBudget).toBe(true);
    expect(s.sourceMapBytes).toBeGreaterThan(0);
  });

  it("replaces the SDK's default credential chain with the environment only", () => {
    const run = bundle(join(fixtures, "lazy"), "--quiet");
    expect(run.status, run.stderr).toBe(0);
    const meta = JSON.parse(readFileSync(join(run.outDir, "metafile.json"), "utf8")).switch;
    const inputs = Object.keys(meta.inputs);
    expect(inputs.some((i) => i.includes("@aws-sdk/client-s3"))).toBe(true);
    expect(
      inputs.filter((i) => /credential-provider-(node|ini|sso|process|web-identity)|nested-clients/.test(i)),
    ).toEqual([]);
    expect(inputs).toContain("lambda-environment-credentials:lambda-environment-credentials");
  });

  it("prints a size table and exits non-zero over budget only with --check", () => {
    const within = bundle(join(fixtures, "lazy"), "--check");
    expect(within.status, within.stderr).toBe(0);
    expect(within.stdout).toMatch(/^function\s+total\s+at init\s+total gzip\s+init\/500\.0 KB\s+budget\n/);
    expect(within.stdout).toMatch(/\nswitch\s+[\d.]+ KB\s+[\d.]+ KB\s+[\d.]+ KB\s+\d+%\s+ok\n/);

    const over = bundle(join(fixtures, "lazy"), "--budget-kb", "10");
    expect(over.status).toBe(0);
    expect(over.stdout).toMatch(/\nswitch\s.*\sOVER\n/);
    expect(over.stderr).toMatch(/over the 10 KB budget: switch/);
    expect(bundle(join(fixtures, "lazy"), "--budget-kb", "10", "--check").status).toBe(1);
  });

  // The size table in the failure message names the handler over budget.
  it("keeps every Lambda handler's code loaded at init within the budget", { timeout: 120_000 }, () => {
    const run = bundle(join(repoRoot, "functions"), "--check");
    expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0);
    const sizes = JSON.parse(readFileSync(join(run.outDir, "sizes.json"), "utf8"));
    const handlers = readdirSync(join(repoRoot, "functions"))
      .filter((f) => f.endsWith(".ts"))
      .map((f) => f.slice(0, -3));
    expect(Object.keys(sizes.functions).sort()).toEqual(handlers.sort());
    expect(Object.values<{ withinBudget: boolean }>(sizes.functions).every((s) => s.withinBudget)).toBe(true);
  });
});
