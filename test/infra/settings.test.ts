/** Deployment settings from CDK context: defaults, derived values and validation. */
import { App } from "aws-cdk-lib";
import { describe, expect, it } from "vitest";
import { DEFAULT_SETTINGS, defaultPluginFunctionPrefix, readSettings } from "../../infra/settings.js";

const settings = (context: Record<string, unknown> = {}) => readSettings(new App({ context }).node);

describe("deployment settings", () => {
  it("have defaults that need no context at all", () => {
    expect(settings()).toEqual({
      ...DEFAULT_SETTINGS,
      pluginFunctionPrefix: "difypluginda-plugin-",
      difyInnerApiUrl: undefined,
      difyInnerApiKeySecretArn: undefined,
      daemonPublicUrl: undefined,
    });
  });

  it("derive a plugin function prefix of at most 20 characters from the stack name", () => {
    expect(defaultPluginFunctionPrefix("DifyPluginDaemon")).toBe("difypluginda-plugin-");
    expect(defaultPluginFunctionPrefix("Staging")).toBe("staging-plugin-");
    expect(defaultPluginFunctionPrefix("My-Very-Long-Stack-Name-2")).toHaveLength(20);
    expect(settings({ stackName: "Dev" }).pluginFunctionPrefix).toBe("dev-plugin-");
    expect(settings({ pluginFunctionPrefix: "dify-plugin-" }).pluginFunctionPrefix).toBe("dify-plugin-");
  });

  it("parse numbers, flags and URLs given on the command line as strings", () => {
    const s = settings({
      forceVerifyingSignature: "false",
      maxPluginPackageSize: "1048576",
      pluginMaxExecutionTimeout: "120",
      difyInnerApiUrl: "https://dify.example.com/",
      daemonPublicUrl: "http://{restApiId}.execute-api.localhost.localstack.cloud:4566/{stage}/",
      pluginArch: "x86_64",
    });
    expect(s).toMatchObject({
      forceVerifyingSignature: false,
      maxPluginPackageSize: 1_048_576,
      pluginMaxExecutionTimeout: 120,
      difyInnerApiUrl: "https://dify.example.com",
      daemonPublicUrl: "http://{restApiId}.execute-api.localhost.localstack.cloud:4566/{stage}",
      pluginArch: "x86_64",
    });
    // cdk.json context holds real JSON types.
    expect(settings({ forceVerifyingSignature: false, throttlingRateLimit: 10 })).toMatchObject({
      forceVerifyingSignature: false,
      throttlingRateLimit: 10,
      throttlingBurstLimit: 200,
    });
  });

  it("reject values that would produce a broken deployment, naming the context key", () => {
    expect(() => settings({ pluginFunctionPrefix: "a-prefix-that-is-far-too-long-" })).toThrow(/pluginFunctionPrefix/);
    expect(() => settings({ pluginFunctionPrefix: "bad/prefix" })).toThrow(/pluginFunctionPrefix/);
    expect(() => settings({ pluginArch: "arm" })).toThrow(/pluginArch/);
    expect(() => settings({ pluginMaxExecutionTimeout: "900" })).toThrow(/pluginMaxExecutionTimeout/);
    expect(() => settings({ forceVerifyingSignature: "yes" })).toThrow(/forceVerifyingSignature/);
    expect(() => settings({ difyInnerApiUrl: "dify.example.com" })).toThrow(/difyInnerApiUrl/);
    expect(() => settings({ difyInnerApiKeySecretArn: "my-secret" })).toThrow(/difyInnerApiKeySecretArn/);
    expect(() => settings({ stageName: "prod stage" })).toThrow(/stageName/);
    expect(() => settings({ logLevel: "verbose" })).toThrow(/logLevel/);
  });
});
