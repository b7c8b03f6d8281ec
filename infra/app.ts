/**
 * CDK app: bundles the handlers (scripts/bundle.mjs), then defines the daemon stack and checks it
 * with cdk-nag's AwsSolutions pack. Settings come from context (infra/settings.ts, docs/deploy.md).
 *
 *   npx cdk synth                       # bundles, synthesises, fails on unsuppressed nag errors
 *   npx cdk synth -c skipBundle=true    # reuse dist/functions from an earlier bundle
 */
import { spawnSync } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { App, Validations } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { readSettings } from "./settings.js";
import { PluginDaemonStack } from "./stack.js";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const bundleDir = join(repoRoot, "dist", "functions");

const app = new App();
const settings = readSettings(app.node);

if (app.node.tryGetContext("skipBundle") !== "true" && app.node.tryGetContext("skipBundle") !== true) {
  // stdout of the bundler goes to stderr: `cdk synth` prints the template on stdout.
  const run = spawnSync(process.execPath, [join(repoRoot, "scripts", "bundle.mjs")], {
    stdio: ["ignore", process.stderr, process.stderr],
  });
  if (run.status !== 0) throw new Error(`scripts/bundle.mjs failed (exit ${run.status ?? run.signal})`);
}

new PluginDaemonStack(app, settings.stackName, {
  stackName: settings.stackName,
  settings,
  bundleDir,
  layersDir: join(repoRoot, "layers"),
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
});
Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
