/**
 * How the plugin layer is built: by layers/build-layer.sh when it works, otherwise by packaging
 * plugin-runtime/ as is with a warning, so `cdk synth` still works offline.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App, Stack } from "aws-cdk-lib";
import { Annotations, Match } from "aws-cdk-lib/assertions";
import type { Asset } from "aws-cdk-lib/aws-s3-assets";
import { describe, expect, it } from "vitest";
import { PackageBucket } from "../../infra/constructs/package-bucket.js";
import { PluginRuntime } from "../../infra/constructs/plugin-runtime.js";

/** A layers/ directory with the given build script (or none). */
function layersDir(script?: string): string {
  const dir = mkdtempSync(join(tmpdir(), "layers-"));
  mkdirSync(join(dir, "plugin-runtime"));
  writeFileSync(join(dir, "plugin-runtime", "bootstrap"), "#!/bin/sh\n");
  mkdirSync(join(dir, "plugin-builder"));
  writeFileSync(join(dir, "plugin-builder", "handler.py"), "def handler(event, context):\n    return {}\n");
  if (script !== undefined) {
    writeFileSync(join(dir, "build-layer.sh"), script);
    chmodSync(join(dir, "build-layer.sh"), 0o755);
  }
  return dir;
}

function synthRuntime(dir: string, layerBuild?: "script" | "copy") {
  const app = new App({ outdir: mkdtempSync(join(tmpdir(), "runtime-cdk-")) });
  const stack = new Stack(app, "Runtime");
  const runtime = new PluginRuntime(stack, "PluginRuntime", {
    layersDir: dir,
    functionPrefix: "test-plugin-",
    arch: "arm64",
    packageBucket: new PackageBucket(stack, "Packages"),
    layerBuild,
  });
  const asset = runtime.layer.node.tryFindChild("Code") as Asset;
  return { stack, layerDir: join(app.outdir, asset.assetPath) };
}

const warnings = (stack: Stack) => Annotations.fromStack(stack).findWarning("*", Match.stringLikeRegexp("plugin-runtime/ as is"));

describe("plugin layer build", () => {
  it("runs build-layer.sh with the output directory, architecture and Python version", () => {
    const dir = layersDir('#!/usr/bin/env bash\nset -e\necho "$@" > "$1/args"\nmkdir -p "$1/python"\n');
    const { stack, layerDir } = synthRuntime(dir);
    const [out, arch, python] = readFileSync(join(layerDir, "args"), "utf8").trim().split(" ");
    expect(out).toMatch(/-building$/);
    expect([arch, python]).toEqual(["arm64", "3.12"]);
    expect(existsSync(join(layerDir, "bootstrap"))).toBe(false);
    expect(warnings(stack)).toEqual([]);
  });

  it("falls back to plugin-runtime/ as is, with a warning, when the script fails", () => {
    const dir = layersDir('#!/usr/bin/env bash\necho partial > "$1/partial"\nexit 3\n');
    const { stack, layerDir } = synthRuntime(dir);
    expect(existsSync(join(layerDir, "bootstrap"))).toBe(true);
    expect(existsSync(join(layerDir, "partial"))).toBe(false);
    expect(warnings(stack)).toHaveLength(1);
  });

  it("falls back, with a warning, when there is no script", () => {
    const { stack, layerDir } = synthRuntime(layersDir());
    expect(existsSync(join(layerDir, "bootstrap"))).toBe(true);
    expect(warnings(stack)).toHaveLength(1);
  });

  it("packages plugin-runtime/ as is without running the script in copy mode", () => {
    const dir = layersDir('#!/usr/bin/env bash\ntouch "$1/from-script"\n');
    const { stack, layerDir } = synthRuntime(dir, "copy");
    expect(existsSync(join(layerDir, "bootstrap"))).toBe(true);
    expect(existsSync(join(layerDir, "from-script"))).toBe(false);
    expect(warnings(stack)).toEqual([]);
  });
});
