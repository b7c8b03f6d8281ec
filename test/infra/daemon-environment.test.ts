/**
 * The handlers' environment has one spelling, the configuration schema's: every variable the
 * stack writes on a handler is one the daemon reads, and the values parse. A misspelt name is a
 * type error (checked by tsc, which covers test/ and infra/), shown below.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { beforeAll, describe, expect, it } from "vitest";
import { HANDLER_NAMES } from "../../infra/constructs/handlers.js";
import { daemonEnvironment } from "../../infra/daemon-environment.js";
import { readSettings } from "../../infra/settings.js";
import { PluginDaemonStack } from "../../infra/stack.js";
import { DAEMON_ENV_NAMES, type DaemonEnvName, loadConfig, OBSERVABILITY_ENV_NAMES } from "../../src/config.js";
import { cdkJsonContext, layersDir, logicalId } from "./synth.js";

/** Every optional variable on: inner-API URL, plugin VPC, tracing. */
const CONTEXT = {
  difyInnerApiUrl: "https://dify.example.com",
  pluginVpcSubnetIds: "subnet-0aaaaaaaaaaaaaaaa",
  pluginVpcSecurityGroupIds: "sg-0bbbbbbbbbbbbbbbb",
  tracing: "true",
};

let environments: Record<string, Record<string, unknown>>;

/**
 * The stack on stand-in handler bundles: only the environment is read here, and the real
 * bundles are rebuilt by other test files (`cdk synth` starts from an empty directory).
 */
beforeAll(() => {
  const bundleDir = mkdtempSync(join(tmpdir(), "daemon-env-bundles-"));
  for (const name of HANDLER_NAMES) {
    mkdirSync(join(bundleDir, name));
    writeFileSync(join(bundleDir, name, "index.mjs"), "export const handler = async () => undefined;\n");
  }
  const app = new App({
    outdir: mkdtempSync(join(tmpdir(), "daemon-env-cdk-")),
    context: { ...cdkJsonContext(), pluginLayerBuild: "copy", ...CONTEXT },
  });
  const settings = readSettings(app.node);
  const stack = new PluginDaemonStack(app, settings.stackName, { settings, bundleDir, layersDir });
  const resources = Template.fromStack(stack).toJSON().Resources as Record<string, any>;
  environments = Object.fromEntries(
    HANDLER_NAMES.map((name) => [
      name,
      resources[logicalId(stack, stack.handlers.functions[name])].Properties.Environment.Variables,
    ]),
  );
}, 180_000);

describe("the handlers' environment", () => {
  it("names only variables the daemon's configuration (or its observability) reads", () => {
    const known = new Set<string>([...DAEMON_ENV_NAMES, ...OBSERVABILITY_ENV_NAMES]);
    for (const name of HANDLER_NAMES) {
      const names = Object.keys(environments[name]!);
      expect(names.length, name).toBeGreaterThan(10);
      expect(
        names.filter((n) => !known.has(n)),
        name,
      ).toEqual([]);
    }
    // The optional ones were written, so the check above saw them.
    expect(environments.management).toHaveProperty("DIFY_INNER_API_URL");
    expect(environments.management).toHaveProperty("PLUGIN_SUBNET_IDS");
    expect(environments.dispatch).toHaveProperty("DAEMON_TRACING");
  });

  it("parses as the daemon's configuration, deploy-time references standing in as text", () => {
    const env = Object.fromEntries(
      Object.entries(environments.management!).map(([k, v]) => [k, typeof v === "string" ? v : `ref:${k}`]),
    );
    const config = loadConfig(env);
    expect(config.storeBackend).toBe("aws");
    expect(config.metadataTable).toBe("ref:METADATA_TABLE");
    expect(config.pluginVpc.subnetIds).toEqual(["subnet-0aaaaaaaaaaaaaaaa"]);
    expect(config.logLevel).toBe("info");
  });
});

describe("daemonEnvironment", () => {
  it("leaves out variables without a value", () => {
    expect(daemonEnvironment({ STORE_BACKEND: "aws", DIFY_INNER_API_URL: undefined })).toEqual({
      STORE_BACKEND: "aws",
    });
  });

  it("accepts only the configuration's names (a type error otherwise)", () => {
    // @ts-expect-error: not a variable the daemon reads (METADATA_TABLE misspelt)
    const misspelt = daemonEnvironment({ METADATA_TABEL: "t" });
    expect(misspelt).toEqual({ METADATA_TABEL: "t" });
    const name: DaemonEnvName = "METADATA_TABLE";
    // @ts-expect-error: a name the schema does not have
    const unknown: DaemonEnvName = "METADATA_TABEL";
    expect([name, unknown]).toEqual(["METADATA_TABLE", "METADATA_TABEL"]);
  });
});
