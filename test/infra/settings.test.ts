/** Deployment settings from CDK context: defaults, derived values and validation. */
import { App } from "aws-cdk-lib";
import { describe, expect, it } from "vitest";
import {
  DEFAULT_RESERVED_CONCURRENCY,
  DEFAULT_SETTINGS,
  defaultPluginFunctionPrefix,
  readSettings,
} from "../../infra/settings.js";

const settings = (context: Record<string, unknown> = {}) => readSettings(new App({ context }).node);

describe("deployment settings", () => {
  it("have defaults that need no context at all", () => {
    expect(settings()).toEqual({
      ...DEFAULT_SETTINGS,
      pluginFunctionPrefix: "difypluginda-plugin-",
      difyInnerApiUrl: undefined,
      difyInnerApiKeySecretArn: undefined,
      daemonPublicUrl: undefined,
      // Off by default: any reservation fails the deploy on a new account's low quota.
      reservedConcurrency: undefined,
      handlerVpc: undefined,
      pluginVpc: undefined,
    });
  });

  it("reserve concurrency for the daemon's handlers when asked, the recommended values or per handler", () => {
    const total = Object.values(DEFAULT_RESERVED_CONCURRENCY).reduce((a, b) => a + b, 0);
    // Lambda keeps 100 unreserved: the defaults fit any account quota of 226 or more.
    expect(total).toBe(126);
    expect(settings({ reservedConcurrency: "dispatch=200, backwards-invocation=200" }).reservedConcurrency).toEqual({
      ...DEFAULT_RESERVED_CONCURRENCY,
      dispatch: 200,
      "backwards-invocation": 200,
    });
    expect(settings({ reservedConcurrency: "recommended" }).reservedConcurrency).toEqual(DEFAULT_RESERVED_CONCURRENCY);
    expect(settings({ reservedConcurrency: "off" }).reservedConcurrency).toBeUndefined();
    expect(() => settings({ reservedConcurrency: "plugins=5" })).toThrow(/reservedConcurrency/);
    expect(() => settings({ reservedConcurrency: "dispatch=-1" })).toThrow(/reservedConcurrency/);
  });

  it("place handlers and plugin functions in a VPC only when both subnets and security groups are given", () => {
    const s = settings({
      vpcSubnetIds: "subnet-0123456789abcdef0, subnet-0fedcba9876543210",
      vpcSecurityGroupIds: "sg-0123456789abcdef0",
      pluginVpcSubnetIds: "subnet-0123456789abcdef0",
      pluginVpcSecurityGroupIds: "sg-0aaaaaaaaaaaaaaaa",
    });
    expect(s.handlerVpc).toEqual({
      subnetIds: ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"],
      securityGroupIds: ["sg-0123456789abcdef0"],
    });
    expect(s.pluginVpc).toEqual({
      subnetIds: ["subnet-0123456789abcdef0"],
      securityGroupIds: ["sg-0aaaaaaaaaaaaaaaa"],
    });
    expect(() => settings({ vpcSubnetIds: "subnet-0123456789abcdef0" })).toThrow(
      /vpcSubnetIds and vpcSecurityGroupIds go together/,
    );
    expect(() =>
      settings({ vpcSubnetIds: "vpc-0123456789abcdef0", vpcSecurityGroupIds: "sg-0123456789abcdef0" }),
    ).toThrow(/not a subnet- id/);
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
