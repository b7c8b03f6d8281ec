import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import {
  checkFunctionPrefix,
  functionTimeoutSeconds,
  identifierSha256,
  lambdaPythonRuntime,
  memorySizeMiB,
  pluginCodeKey,
  pluginFunctionName,
  pluginFunctionSpec,
  pluginFunctionTags,
  tagsMatch,
} from "../../src/adapters/aws/lambda-function-spec.js";
import { loadDeclaration } from "../../src/domain/declaration.js";
import { uniqueIdentifier } from "../../src/domain/identifier.js";
import type { PluginDeclaration } from "../../src/domain/manifest.js";

const FIXTURE = fileURLToPath(new URL("../fixtures/plugins/echo-tool/", import.meta.url));
const echoTool = loadDeclaration((path) => {
  try {
    return readFileSync(join(FIXTURE, path));
  } catch {
    return undefined;
  }
});

const UID = uniqueIdentifier(`fixtures/echo-tool:0.0.1@${"a".repeat(64)}`);
const MIB = 1024 * 1024;

function withResource(resource: Record<string, unknown>, runnerVersion = "3.12"): PluginDeclaration {
  return {
    ...echoTool,
    resource: { ...echoTool.resource, ...resource },
    meta: { ...echoTool.meta, runner: { ...echoTool.meta.runner, version: runnerVersion } },
  } as PluginDeclaration;
}

describe("plugin function names", () => {
  it("are the prefix plus a stable hash of the identifier, within Lambda's name rules", () => {
    const name = pluginFunctionName("dify-plugin-", UID);
    expect(name).toBe(pluginFunctionName("dify-plugin-", UID));
    expect(name).toMatch(/^dify-plugin-[0-9a-f]{24}$/);
    expect(name.length).toBeLessThanOrEqual(64);
    expect(pluginFunctionName("dify-plugin-", UID.replace("0.0.1", "0.0.2"))).not.toBe(name);
  });

  it("stay within 64 characters even for the longest identifiers", () => {
    const longest = `${"a".repeat(64)}/${"b".repeat(255)}:1234.1234.1234.1234-${"c".repeat(16)}@${"f".repeat(64)}`;
    expect(pluginFunctionName("p".repeat(40), longest)).toHaveLength(64);
  });

  it("refuse a prefix with characters Lambda rejects or without room for the hash", () => {
    expect(() => checkFunctionPrefix("dify plugin/")).toThrow(/letters, digits/);
    expect(() => checkFunctionPrefix("p".repeat(41))).toThrow(/at most 40/);
    expect(() => checkFunctionPrefix("")).not.toThrow();
  });
});

describe("Python runtime for meta.runner.version", () => {
  it("uses the matching managed runtime", () => {
    expect(lambdaPythonRuntime("3.12")).toBe("python3.12");
    expect(lambdaPythonRuntime("3.13")).toBe("python3.13");
    expect(lambdaPythonRuntime("3.12.4")).toBe("python3.12");
  });

  it("uses the closest newer runtime for an older 3.x", () => {
    expect(lambdaPythonRuntime("3.10")).toBe("python3.12");
    expect(lambdaPythonRuntime("3")).toBe("python3.12");
  });

  it("fails clearly when no supported runtime is new enough, or for another major version", () => {
    expect(() => lambdaPythonRuntime("3.14")).toThrow(
      /no AWS Lambda Python runtime for meta.runner.version "3.14".*python3.12, python3.13/,
    );
    expect(() => lambdaPythonRuntime("2.7")).toThrow(/no AWS Lambda Python runtime/);
    expect(() => lambdaPythonRuntime("latest")).toThrow(/not a Python version/);
  });
});

describe("memory from resource.memory", () => {
  it("is at least the 1024 MB floor by default, the CPU share a plugin needs to start within init", () => {
    expect(memorySizeMiB(1 * MIB)).toBe(1024);
    expect(memorySizeMiB(268_435_456)).toBe(1024);
    expect(memorySizeMiB(2048 * MIB)).toBe(2048);
  });

  it("converts bytes to MiB, rounding up, above a lower configured floor", () => {
    expect(memorySizeMiB(268_435_456, 128)).toBe(256);
    expect(memorySizeMiB(256 * MIB + 1, 128)).toBe(257);
  });

  it("clamps to Lambda's 128..10240 MB", () => {
    expect(memorySizeMiB(64 * MIB, 0)).toBe(128);
    expect(memorySizeMiB(1, 0)).toBe(128);
    expect(memorySizeMiB(20 * 1024 * MIB)).toBe(10_240);
  });
});

describe("function timeout", () => {
  it("is the daemon's execution timeout when the manifest declares none, at most 900 s", () => {
    expect(functionTimeoutSeconds(withResource({}), 600)).toBe(600);
    expect(functionTimeoutSeconds(withResource({}), 3600)).toBe(900);
    expect(functionTimeoutSeconds(withResource({}), 0)).toBe(1);
  });

  it("is resource.timeout (seconds) when the manifest declares a positive number, at most 900 s", () => {
    expect(functionTimeoutSeconds(withResource({ timeout: 120 }), 600)).toBe(120);
    expect(functionTimeoutSeconds(withResource({ timeout: 1.5 }), 600)).toBe(2);
    expect(functionTimeoutSeconds(withResource({ timeout: 5000 }), 600)).toBe(900);
  });

  it("ignores a resource.timeout that is not a positive number", () => {
    expect(functionTimeoutSeconds(withResource({ timeout: "120" }), 300)).toBe(300);
    expect(functionTimeoutSeconds(withResource({ timeout: -5 }), 300)).toBe(300);
  });
});

describe("tags and code keys", () => {
  it("tag the identifier, its plugin id and its SHA-256, and match only that identifier", () => {
    const tags = pluginFunctionTags(UID);
    expect(tags).toEqual({
      "dify:plugin-unique-identifier": UID,
      "dify:plugin-unique-identifier-sha256": identifierSha256(UID),
      "dify:plugin-id": "fixtures/echo-tool",
    });
    expect(tagsMatch(tags, UID)).toBe(true);
    expect(tagsMatch(tags, UID.replace("0.0.1", "0.0.2"))).toBe(false);
    expect(tagsMatch(undefined, UID)).toBe(false);
  });

  it("leave out values longer than Lambda's 256-character tag limit but keep the hash", () => {
    const long = uniqueIdentifier(`${"a".repeat(64)}/${"b".repeat(150)}:1.0.0@${"f".repeat(64)}`);
    const tags = pluginFunctionTags(long);
    expect(tags["dify:plugin-unique-identifier"]).toBeUndefined();
    expect(tags["dify:plugin-id"]).toBe(`${"a".repeat(64)}/${"b".repeat(150)}`);
    expect(tagsMatch(tags, long)).toBe(true);
  });

  it("put built code under plugin-code/, one zip per identifier, runtime and architecture", () => {
    expect(pluginCodeKey(UID, "python3.12", "arm64")).toBe(
      `plugin-code/fixtures/echo-tool/0.0.1@${"a".repeat(64)}/python3.12-arm64.zip`,
    );
  });
});

describe("pluginFunctionSpec", () => {
  it("collects the function definition from the declaration and daemon settings", () => {
    const spec = pluginFunctionSpec(UID, withResource({ memory: 2048 * MIB }, "3.13"), {
      functionPrefix: "dify-plugin-",
      arch: "x86_64",
      executionTimeoutSeconds: 600,
    });
    expect(spec).toMatchObject({
      functionName: pluginFunctionName("dify-plugin-", UID),
      runtime: "python3.13",
      arch: "x86_64",
      memorySizeMiB: 2048,
      timeoutSeconds: 600,
      codeKey: pluginCodeKey(UID, "python3.13", "x86_64"),
      environment: {
        AWS_LAMBDA_EXEC_WRAPPER: "/opt/dify-plugin-bootstrap",
        INSTALL_METHOD: "local",
        DIFY_PLUGIN_ENTRYPOINT: "main",
      },
      description: `Dify plugin ${UID}`,
    });
  });
});
