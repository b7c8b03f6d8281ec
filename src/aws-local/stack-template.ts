/**
 * The daemon's CDK stack synthesised in this process, as `cdk synth` makes it (cdk.json's
 * context plus the caller's): its CloudFormation template and the assets it deploys (handler
 * bundles, the plugin builder, the plugin layer), as local directories. The local composition
 * deploys exactly this (local-deployment.ts), so what runs here is what the stack would create.
 */
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { App } from "aws-cdk-lib";
import { z } from "zod";
import { type PluginDaemonSettings, readSettings } from "../../infra/settings.js";
import { PluginDaemonStack } from "../../infra/stack.js";

export const REPO_ROOT = resolve(fileURLToPath(new URL("../..", import.meta.url)));

export interface TemplateResource {
  Type: string;
  Properties?: Record<string, unknown>;
}

export interface SynthesizedStack {
  stackName: string;
  settings: PluginDaemonSettings;
  resources: Record<string, TemplateResource>;
  /** The local directory of an asset, by the S3 key the template names it with (`<hash>.zip`). */
  assetDirectory(objectKey: string): string;
}

const assetManifest = z.object({
  files: z.record(
    z.string(),
    z.object({
      source: z.object({ path: z.string(), packaging: z.string().optional() }),
      destinations: z.record(z.string(), z.object({ objectKey: z.string() })),
    }),
  ),
});

export interface SynthOptions {
  /** Context values, as `-c key=value` gives them to `cdk synth`. */
  context: Record<string, string>;
  /** Handler bundles (`<name>/index.mjs`, scripts/bundle.mjs). */
  bundleDir: string;
  /** Where the cloud assembly is written. */
  outdir: string;
}

export function synthesizeStack(options: SynthOptions): SynthesizedStack {
  const cdkJson = JSON.parse(readFileSync(join(REPO_ROOT, "cdk.json"), "utf8")) as {
    context?: Record<string, unknown>;
  };
  const app = new App({ outdir: options.outdir, context: { ...cdkJson.context, ...options.context } });
  const settings = readSettings(app.node);
  new PluginDaemonStack(app, settings.stackName, {
    stackName: settings.stackName,
    settings,
    bundleDir: options.bundleDir,
    layersDir: join(REPO_ROOT, "layers"),
  });
  const assembly = app.synth();
  const artifact = assembly.getStackByName(settings.stackName);
  const template = artifact.template as { Resources: Record<string, TemplateResource> };
  const manifest = assetManifest.parse(
    JSON.parse(readFileSync(join(assembly.directory, `${artifact.stackName}.assets.json`), "utf8")),
  );
  const directories = new Map<string, string>();
  for (const file of Object.values(manifest.files)) {
    for (const destination of Object.values(file.destinations))
      directories.set(destination.objectKey, join(assembly.directory, file.source.path));
  }
  return {
    stackName: settings.stackName,
    settings,
    resources: template.Resources,
    assetDirectory(objectKey) {
      const dir = directories.get(objectKey);
      if (!dir) throw new Error(`the stack names asset ${objectKey}, which the assembly does not hold`);
      return dir;
    },
  };
}
