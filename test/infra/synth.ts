/**
 * Builds the daemon stack in-process for template assertions, the way infra/app.ts does, with
 * cdk.json's feature flags, so assertions see what `cdk synth` produces.
 */

import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { App, type CfnElement, type Stack } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { readSettings } from "../../infra/settings.js";
import { PluginDaemonStack } from "../../infra/stack.js";

export const repoRoot = resolve(import.meta.dirname, "..", "..");
export const bundleDir = join(repoRoot, "dist", "functions");
export const layersDir = join(repoRoot, "layers");

/** Runs scripts/bundle.mjs (what `cdk synth` does first); throws with its output on failure. */
export function bundleHandlers(): void {
  const run = spawnSync(process.execPath, [join(repoRoot, "scripts", "bundle.mjs"), "--quiet"], { encoding: "utf8" });
  if (run.status !== 0) throw new Error(`scripts/bundle.mjs failed:\n${run.stdout}\n${run.stderr}`);
}

export function cdkJsonContext(): Record<string, unknown> {
  return JSON.parse(readFileSync(join(repoRoot, "cdk.json"), "utf8")).context;
}

export interface SynthesizedDaemon {
  app: App;
  stack: PluginDaemonStack;
  template: Template;
}

/** The layer is copied rather than built: the build script has its own tests and needs PyPI. */
export function synthDaemon(context: Record<string, unknown> = {}): SynthesizedDaemon {
  const app = new App({
    outdir: mkdtempSync(join(tmpdir(), "daemon-cdk-")),
    context: { ...cdkJsonContext(), pluginLayerBuild: "copy", ...context },
  });
  const settings = readSettings(app.node);
  const stack = new PluginDaemonStack(app, settings.stackName, {
    stackName: settings.stackName,
    settings,
    bundleDir,
    layersDir,
  });
  return { app, stack, template: Template.fromStack(stack) };
}

/** A construct's CloudFormation logical id. */
export function logicalId(stack: Stack, element: { node: { defaultChild?: unknown } }): string {
  return stack.getLogicalId(element.node.defaultChild as CfnElement);
}
