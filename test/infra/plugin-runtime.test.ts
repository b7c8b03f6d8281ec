/**
 * How the plugin layer is built: the bootstrap alone by default (`copy`, no Python needed), or by
 * layers/build-layer.sh (`script`), whose failure fails the synth: a layer without
 * /opt/dify-plugin-bootstrap would deploy and start no plugin.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App, Stack } from "aws-cdk-lib";
import type { Asset } from "aws-cdk-lib/aws-s3-assets";
import { describe, expect, it } from "vitest";
import { PackageBucket } from "../../infra/constructs/package-bucket.js";
import { directoryBytes, PluginRuntime } from "../../infra/constructs/plugin-runtime.js";
import { layersDir as realLayersDir } from "./synth.js";

/** A layers/ directory with a minimal plugin-runtime/ and the given build script (or none). */
function layersDir(script?: string): string {
  const dir = mkdtempSync(join(tmpdir(), "layers-"));
  mkdirSync(join(dir, "plugin-runtime", "dify_lambda_bootstrap"), { recursive: true });
  writeFileSync(join(dir, "plugin-runtime", "bootstrap"), "#!/bin/sh\n");
  writeFileSync(join(dir, "plugin-runtime", "dify_lambda_bootstrap", "__main__.py"), "print('hi')\n");
  mkdirSync(join(dir, "plugin-builder"));
  writeFileSync(join(dir, "plugin-builder", "handler.py"), "def handler(event, context):\n    return {}\n");
  if (script !== undefined) {
    writeFileSync(join(dir, "build-layer.sh"), script);
    chmodSync(join(dir, "build-layer.sh"), 0o755);
  }
  return dir;
}

/** A script that lays out a proper layer (as build-layer.sh does), recording its arguments. */
const GOOD_SCRIPT = `#!/usr/bin/env bash
set -e
echo "$@" > "$1/args"
here="$(dirname "$0")"
install -m 0755 "$here/plugin-runtime/bootstrap" "$1/dify-plugin-bootstrap"
mkdir -p "$1/python/dify_lambda_bootstrap" "$1/python/dify_plugin"
cp "$here/plugin-runtime/dify_lambda_bootstrap/__main__.py" "$1/python/dify_lambda_bootstrap/"
`;

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
  return { runtime, layerDir: join(app.outdir, asset.assetPath) };
}

const executable = (path: string) => (statSync(path).mode & 0o111) !== 0;

describe("plugin layer build", () => {
  it("by default lays out the bootstrap alone, where the exec wrapper points, without running any script", () => {
    const dir = layersDir('#!/usr/bin/env bash\ntouch "$1/from-script"\n');
    const { runtime, layerDir } = synthRuntime(dir);
    expect(executable(join(layerDir, "dify-plugin-bootstrap"))).toBe(true);
    expect(readFileSync(join(layerDir, "python", "dify_lambda_bootstrap", "__main__.py"), "utf8")).toBe(
      "print('hi')\n",
    );
    expect(existsSync(join(layerDir, "from-script"))).toBe(false);
    // The layer's size is known to the daemon, for the 250 MB check before CreateFunction.
    expect(runtime.layerUnzippedBytes).toBe(directoryBytes(layerDir));
    expect(runtime.layerUnzippedBytes).toBeGreaterThan(0);
  });

  it("lays out the real bootstrap: every module of dify_lambda_bootstrap, no SDK (plugins ship it)", () => {
    const { runtime, layerDir } = synthRuntime(realLayersDir, "copy");
    for (const module of [
      "__main__.py",
      "plugin_process.py",
      "session.py",
      "backwards.py",
      "runtime_api.py",
      "ndjson.py",
      "log.py",
    ]) {
      expect(existsSync(join(layerDir, "python", "dify_lambda_bootstrap", module)), module).toBe(true);
    }
    expect(existsSync(join(layerDir, "python", "dify_plugin"))).toBe(false);
    // Kilobytes, not the ~56 MB the SDK would take of every plugin's 250 MB.
    expect(runtime.layerUnzippedBytes).toBeLessThan(200_000);
  });

  it("runs build-layer.sh in script mode with the output directory, architecture and Python version", () => {
    const { layerDir } = synthRuntime(layersDir(GOOD_SCRIPT), "script");
    const [out, arch, python] = readFileSync(join(layerDir, "args"), "utf8").trim().split(" ");
    expect(out).toMatch(/-building$/);
    expect([arch, python]).toEqual(["arm64", "3.12"]);
    expect(executable(join(layerDir, "dify-plugin-bootstrap"))).toBe(true);
  });

  it("fails the synth when build-layer.sh fails (e.g. no Python >= 3.12), naming copy mode as the way out", () => {
    const dir = layersDir('#!/usr/bin/env bash\necho partial > "$1/partial"\nexit 3\n');
    expect(() => synthRuntime(dir, "script")).toThrow(
      /build-layer\.sh failed \(exit status 3\).*pluginLayerBuild=copy/,
    );
  });

  it("fails the synth when the script succeeds but leaves no bootstrap", () => {
    const dir = layersDir('#!/usr/bin/env bash\nmkdir -p "$1/python"\n');
    expect(() => synthRuntime(dir, "script")).toThrow(/no executable dify-plugin-bootstrap .*start no plugin/);
  });

  it("fails the synth in script mode when there is no script", () => {
    expect(() => synthRuntime(layersDir(), "script")).toThrow(/build-layer\.sh is missing/);
  });
});
