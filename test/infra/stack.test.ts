/**
 * The CDK app: every resource and its key properties, every route → function, streaming
 * integrations, IAM scoped to named resources, cdk-nag clean, and `cdk synth` itself.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Stack, Validations } from "aws-cdk-lib";
import { Match } from "aws-cdk-lib/assertions";
import type { Asset } from "aws-cdk-lib/aws-s3-assets";
import { AwsSolutionsChecks } from "cdk-nag";
import type { IConstruct } from "constructs";
import { beforeAll, describe, expect, it } from "vitest";
import { NOT_FOUND_BODY } from "../../infra/constructs/api.js";
import { HANDLER_NAMES, type HandlerName } from "../../infra/constructs/handlers.js";
import { VPC_EXECUTION_ACTIONS } from "../../infra/constructs/vpc-placement.js";
import { DEFAULT_RESERVED_CONCURRENCY } from "../../infra/settings.js";
import { DIFY_CALLERS } from "../../infra/stack.js";
import { pluginCodeKey } from "../../src/adapters/aws/lambda-function-spec.js";
import { SqliteItemStore } from "../../src/adapters/local/sqlite-item-store.js";
import type { DaemonEnvironment } from "../../src/config.js";
import { assetBlobKey, packageBlobKey } from "../../src/domain/blob-keys.js";
import { uniqueIdentifier } from "../../src/domain/identifier.js";
import type { BlobStore } from "../../src/ports/blob-store.js";
import { INLINE_MAX_BYTES, PluginStorage } from "../../src/stores/plugin-storage.js";
import { itemTableDefinition } from "../support/aws-resources.js";
import { bundleHandlers, logicalId, repoRoot, type SynthesizedDaemon, synthDaemon } from "./synth.js";

type Json = Record<string, any>;

let daemon: SynthesizedDaemon;
/** `cdk synth` as a user runs it (it bundles the handlers first), once for the whole file. */
let cliSynth: { status: number | null; output: string; outdir: string };
let resources: Record<string, Json>;
/** Logical id of each handler function. */
let fnId: Record<HandlerName | "builder", string>;

beforeAll(() => {
  const outdir = mkdtempSync(join(tmpdir(), "daemon-synth-"));
  // Without the test run's emulator endpoint and credentials: synth must work offline.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith("AWS_") && !k.startsWith("CDK_")),
  );
  const run = spawnSync("npx", ["cdk", "synth", "--quiet", "-c", "pluginLayerBuild=copy", "-o", outdir], {
    cwd: repoRoot,
    env: { ...env, AWS_EC2_METADATA_DISABLED: "true" },
    encoding: "utf8",
    timeout: 170_000,
  });
  cliSynth = { status: run.status, output: `${run.stdout}\n${run.stderr}`, outdir };
  // The command line bundled the handlers; bundle here only if it could not.
  if (run.status !== 0) bundleHandlers();
  daemon = synthDaemon();
  resources = daemon.template.toJSON().Resources;
  const { stack } = daemon;
  fnId = Object.fromEntries([
    ...HANDLER_NAMES.map((n) => [n, logicalId(stack, stack.handlers.functions[n])]),
    ["builder", logicalId(stack, stack.pluginRuntime.builder)],
  ]) as typeof fnId;
}, 180_000);

const ofType = (type: string): Array<[string, Json]> => Object.entries(resources).filter(([, r]) => r.Type === type);
const environmentOf = (id: string): Record<string, unknown> => resources[id]!.Properties.Environment.Variables;
/** Expected handler variables, named as the daemon's configuration names them (a misspelt name is a type error). */
const daemonVariables = (vars: { [K in keyof DaemonEnvironment]?: unknown }) => vars;

describe("handlers", () => {
  it("are one Node.js 22 ARM64 function per bundle, with JSON logs in their own log group", () => {
    for (const name of HANDLER_NAMES) {
      const fn = resources[fnId[name]]!.Properties;
      expect(fn.Runtime).toBe("nodejs22.x");
      expect(fn.Architectures).toEqual(["arm64"]);
      expect(fn.Handler).toBe("index.handler");
      expect(fn.LoggingConfig).toMatchObject({
        LogFormat: "JSON",
        ApplicationLogLevel: "INFO",
        SystemLogLevel: "WARN",
      });
      expect(fn.LoggingConfig.LogGroup).toEqual({ Ref: expect.stringMatching(/Logs/) });
      expect(fn.TracingConfig).toBeUndefined();
    }
    // Six handlers plus the Python plugin builder.
    expect(ofType("AWS::Lambda::Function")).toHaveLength(HANDLER_NAMES.length + 1);
  });

  it("are sized per handler: buffered within API Gateway's 29 s, streaming past the plugin timeout", () => {
    const props = (n: HandlerName) => resources[fnId[n]]!.Properties;
    expect(props("management")).toMatchObject({ MemorySize: 1024, Timeout: 29 });
    for (const n of ["dispatch", "public-endpoint", "backwards-invocation"] as const) {
      expect(props(n)).toMatchObject({ MemorySize: 512, Timeout: 630 });
    }
    expect(props("install-worker")).toMatchObject({ MemorySize: 1024, Timeout: 900 });
    expect(props("upgrade-check")).toMatchObject({ Timeout: 300 });
  });

  it("reserve concurrency so plugin functions cannot starve them, when asked (a new account's low quota refuses any reservation)", () => {
    for (const fn of Object.values(resources).filter((r) => r.Type === "AWS::Lambda::Function")) {
      expect(fn.Properties.ReservedConcurrentExecutions).toBeUndefined();
    }
    const recommended = synthDaemon({ reservedConcurrency: "recommended" }).template;
    for (const name of HANDLER_NAMES) {
      const found = recommended.findResources("AWS::Lambda::Function", {
        Properties: { ReservedConcurrentExecutions: DEFAULT_RESERVED_CONCURRENCY[name] },
      });
      expect(Object.keys(found).length, name).toBeGreaterThan(0);
    }
    const raised = synthDaemon({ reservedConcurrency: "dispatch=300" }).template;
    raised.hasResourceProperties("AWS::Lambda::Function", {
      Description: Match.stringLikeRegexp("plugin invocation"),
      ReservedConcurrentExecutions: 300,
    });
    // Plugin functions and the builder share the unreserved pool.
    expect(resources[fnId.builder]!.Properties.ReservedConcurrentExecutions).toBeUndefined();
  });

  it("run outside any VPC unless subnets and security groups are given", () => {
    for (const [, fn] of ofType("AWS::Lambda::Function")) expect(fn.Properties.VpcConfig).toBeUndefined();
  });

  it("that call Dify run in the given VPC, with their network interface permissions created first; plugin functions on their own setting", () => {
    const vpc = {
      subnetIds: ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"],
      securityGroupIds: ["sg-0123456789abcdef0"],
    };
    const placed = synthDaemon({
      vpcSubnetIds: vpc.subnetIds.join(","),
      vpcSecurityGroupIds: vpc.securityGroupIds.join(","),
      pluginVpcSubnetIds: "subnet-0aaaaaaaaaaaaaaaa",
      pluginVpcSecurityGroupIds: "sg-0bbbbbbbbbbbbbbbb",
    });
    const json = placed.template.toJSON().Resources as Record<string, Json>;
    const id = (n: HandlerName) => logicalId(placed.stack, placed.stack.handlers.functions[n]);
    const policiesOf = (role: string) =>
      Object.entries(json).filter(
        ([, r]) => r.Type === "AWS::IAM::Policy" && r.Properties.Roles.some((x: Json) => x.Ref === role),
      );
    for (const name of HANDLER_NAMES) {
      const fn = json[id(name)]!;
      const inVpc = (DIFY_CALLERS as readonly string[]).includes(name);
      expect(fn.Properties.VpcConfig, name).toEqual(
        inVpc ? { SubnetIds: vpc.subnetIds, SecurityGroupIds: vpc.securityGroupIds } : undefined,
      );
      if (!inVpc) continue;
      const role = fn.Properties.Role["Fn::GetAtt"][0];
      const eni = policiesOf(role).find(([, p]) =>
        JSON.stringify(p.Properties.PolicyDocument).includes("ec2:CreateNetworkInterface"),
      );
      expect(eni, name).toBeDefined();
      expect(eni![1].Properties.PolicyDocument.Statement[0]).toMatchObject({
        Action: [...VPC_EXECUTION_ACTIONS].sort(),
        Resource: "*",
      });
      // CloudFormation must not create the function before its role may create its interfaces.
      expect(fn.DependsOn, name).toContain(eni![0]);
    }
    // Plugin functions: the daemon creates them with VpcConfig from these, and may describe what it names.
    for (const creator of ["management", "install-worker"] as const) {
      expect(json[id(creator)]!.Properties.Environment.Variables).toMatchObject(
        daemonVariables({
          PLUGIN_SUBNET_IDS: "subnet-0aaaaaaaaaaaaaaaa",
          PLUGIN_SECURITY_GROUP_IDS: "sg-0bbbbbbbbbbbbbbbb",
        }),
      );
      const role = json[id(creator)]!.Properties.Role["Fn::GetAtt"][0];
      expect(JSON.stringify(policiesOf(role).map(([, p]) => p.Properties.PolicyDocument))).toContain(
        "ec2:DescribeVpcs",
      );
    }
    const pluginRole = logicalId(placed.stack, placed.stack.pluginRuntime.pluginRole);
    expect(JSON.stringify(policiesOf(pluginRole).map(([, p]) => p.Properties.PolicyDocument))).toContain(
      "ec2:CreateNetworkInterface",
    );
    // Every wildcard that brings has its written reason.
    const report = new AwsSolutionsChecks(placed.app).validateScope(placed.stack as Stack);
    expect(
      report.violations.map((v) => `${v.ruleName} at ${v.violatingResources.map((r) => r.constructPath).join(", ")}`),
    ).toEqual([]);
  });

  it("do not retry asynchronous invocations (install tasks, upgrade checks)", () => {
    const configs = ofType("AWS::Lambda::EventInvokeConfig").map(([, r]) => r.Properties);
    for (const n of ["install-worker", "upgrade-check"] as const) {
      expect(configs).toContainEqual(
        expect.objectContaining({ FunctionName: { Ref: fnId[n] }, MaximumRetryAttempts: 0 }),
      );
    }
  });

  it("get the environment the code reads, with these exact names", () => {
    const { stack } = daemon;
    const tableId = logicalId(stack, stack.table.table);
    const bucketId = logicalId(stack, stack.packages.bucket);
    const restApiId = logicalId(stack, stack.api.restApi);
    for (const name of HANDLER_NAMES) {
      const env = environmentOf(fnId[name]);
      expect(env).toMatchObject(
        daemonVariables({
          STORE_BACKEND: "aws",
          METADATA_TABLE: { Ref: tableId },
          PACKAGE_BUCKET: { Ref: bucketId },
          DAEMON_KEY_SECRET_ARN: { Ref: logicalId(stack, stack.daemonKey.secret) },
          DIFY_INNER_API_KEY_SECRET_ARN: { Ref: expect.stringMatching(/^DifyInnerApiApiKey/) },
          PLUGIN_FUNCTION_PREFIX: "difypluginda-plugin-",
          PLUGIN_ROLE_ARN: { "Fn::GetAtt": [logicalId(stack, stack.pluginRuntime.pluginRole), "Arn"] },
          PLUGIN_LAYER_ARN: { Ref: expect.stringMatching(/^PluginRuntimeLayer/) },
          MARKETPLACE_API_URL: "https://marketplace.dify.ai",
          FORCE_VERIFYING_SIGNATURE: "true",
          MAX_PLUGIN_PACKAGE_SIZE: "52428800",
          PLUGIN_MAX_EXECUTION_TIMEOUT: "600",
          PLUGIN_ARCH: "arm64",
          AUTO_UPGRADE_ENABLED: "true",
          PLUGIN_MIN_MEMORY_MB: "1024",
          FETCH_MISSING_MARKETPLACE_PACKAGES: "true",
          PLUGIN_LAYER_BYTES: expect.stringMatching(/^[1-9]\d{3,5}$/),
        }),
      );
      // Built from the API id, not the stage: a stage reference would be a dependency cycle
      // (Template.fromStack and CDK's CloudFormation validation both reject cycles).
      expect(env.DAEMON_PUBLIC_URL).toEqual({
        "Fn::Join": [
          "",
          [
            "https://",
            { Ref: restApiId },
            ".execute-api.",
            { Ref: "AWS::Region" },
            ".",
            { Ref: "AWS::URLSuffix" },
            "/prod",
          ],
        ],
      });
      // Unset unless configured (no placeholder URL).
      expect(env).not.toHaveProperty("DIFY_INNER_API_URL");
      expect((env.PLUGIN_FUNCTION_PREFIX as string).length).toBeLessThanOrEqual(20);
    }
    expect(environmentOf(fnId.management)).toMatchObject(
      daemonVariables({
        PLUGIN_BUILDER_FUNCTION: { Ref: fnId.builder },
        INSTALL_WORKER_FUNCTION: { Ref: fnId["install-worker"] },
      }),
    );
    expect(environmentOf(fnId["install-worker"])).toMatchObject(
      daemonVariables({ PLUGIN_BUILDER_FUNCTION: { Ref: fnId.builder } }),
    );
    expect(environmentOf(fnId["install-worker"])).not.toHaveProperty("INSTALL_WORKER_FUNCTION");
    expect(environmentOf(fnId["upgrade-check"])).toMatchObject(
      daemonVariables({
        INSTALL_WORKER_FUNCTION: { Ref: fnId["install-worker"] },
      }),
    );
  });

  it("take their settings from context", () => {
    const { template } = synthDaemon({
      stackName: "Staging",
      difyInnerApiUrl: "https://dify.example.com/",
      forceVerifyingSignature: "false",
      pluginArch: "x86_64",
      pluginMaxExecutionTimeout: "300",
      marketplaceApiUrl: "https://marketplace.example.com",
      autoUpgrade: "false",
    });
    const fns = template.findResources("AWS::Lambda::Function", { Properties: { Runtime: "nodejs22.x" } });
    for (const fn of Object.values(fns)) {
      expect(fn.Properties.Environment.Variables).toMatchObject(
        daemonVariables({
          DIFY_INNER_API_URL: "https://dify.example.com",
          FORCE_VERIFYING_SIGNATURE: "false",
          PLUGIN_ARCH: "x86_64",
          PLUGIN_MAX_EXECUTION_TIMEOUT: "300",
          PLUGIN_FUNCTION_PREFIX: "staging-plugin-",
          MARKETPLACE_API_URL: "https://marketplace.example.com",
          AUTO_UPGRADE_ENABLED: "false",
        }),
      );
    }
    // Dify's own check takes over: the rule stays, disabled, so turning it back on is a deploy.
    template.hasResourceProperties("AWS::Events::Rule", { State: "DISABLED" });
    template.hasResourceProperties("AWS::Lambda::LayerVersion", { CompatibleArchitectures: ["x86_64"] });
    template.hasResourceProperties("AWS::Lambda::Function", {
      Environment: { Variables: { PLUGIN_ARCH: "x86_64" } },
      Timeout: 330,
    });
  });

  it("ship the bundle without source maps", () => {
    const asset = daemon.stack.handlers.functions.management.node.tryFindChild("Code") as Asset | undefined;
    expect(asset).toBeDefined();
    const staged = join(daemon.app.outdir, asset!.assetPath);
    expect(existsSync(join(staged, "index.mjs"))).toBe(true);
    expect(existsSync(join(staged, "index.mjs.map"))).toBe(false);
    expect(existsSync(join(repoRoot, "dist", "functions", "management", "index.mjs.map"))).toBe(true);
  });
});

describe("storage", () => {
  it("is one on-demand table with pk/sk, GSI gsi1 (ALL), TTL on ttl, PITR, retained", () => {
    const tables = ofType("AWS::DynamoDB::Table");
    expect(tables).toHaveLength(1);
    const [, table] = tables[0]!;
    expect(table.DeletionPolicy).toBe("Retain");
    expect(table.UpdateReplacePolicy).toBe("Retain");
    // The same keys and index as the table the adapter tests run against on the emulator.
    const tested = itemTableDefinition("any");
    expect(table.Properties).toMatchObject({
      BillingMode: tested.BillingMode,
      KeySchema: tested.KeySchema,
      GlobalSecondaryIndexes: tested.GlobalSecondaryIndexes,
      TimeToLiveSpecification: { AttributeName: "ttl", Enabled: true },
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      SSESpecification: { SSEEnabled: true },
    });
    expect(table.Properties.AttributeDefinitions).toEqual(
      expect.arrayContaining(["pk", "sk", "gsi1pk", "gsi1sk"].map((n) => ({ AttributeName: n, AttributeType: "S" }))),
    );
  });

  it("keeps packages in a private, versioned, encrypted, TLS-only, retained bucket", () => {
    const buckets = ofType("AWS::S3::Bucket");
    expect(buckets).toHaveLength(1);
    const [bucketId, bucket] = buckets[0]!;
    expect(bucket.DeletionPolicy).toBe("Retain");
    expect(bucket.Properties).toMatchObject({
      VersioningConfiguration: { Status: "Enabled" },
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: "AES256" } }],
      },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      OwnershipControls: { Rules: [{ ObjectOwnership: "BucketOwnerEnforced" }] },
    });
    daemon.template.hasResourceProperties("AWS::S3::BucketPolicy", {
      Bucket: { Ref: bucketId },
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: "Deny", Condition: { Bool: { "aws:SecureTransport": "false" } } }),
        ]),
      },
    });
  });

  it("generates the daemon key and the inner API key as secrets", () => {
    const secrets = ofType("AWS::SecretsManager::Secret");
    expect(secrets).toHaveLength(2);
    for (const [, s] of secrets) {
      expect(s.Properties.GenerateSecretString).toMatchObject({ ExcludePunctuation: true, PasswordLength: 48 });
    }
  });

  it("uses an existing inner API key secret when given one, instead of generating it", () => {
    const arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:dify-inner-key-AbCdEf";
    const { template } = synthDaemon({ difyInnerApiKeySecretArn: arn });
    template.resourceCountIs("AWS::SecretsManager::Secret", 1);
    template.hasResourceProperties("AWS::Lambda::Function", {
      Environment: { Variables: Match.objectLike({ DIFY_INNER_API_KEY_SECRET_ARN: arn }) },
    });
    expect(() =>
      synthDaemon({ difyInnerApiKeySecretArn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:partial" }),
    ).toThrow(/complete secret ARN/);
  });
});

describe("plugin runtime", () => {
  it("publishes the plugin layer for Python 3.12 on the plugin architecture, retained for existing functions", () => {
    const layers = ofType("AWS::Lambda::LayerVersion");
    expect(layers).toHaveLength(1);
    expect(layers[0]![1].DeletionPolicy).toBe("Retain");
    expect(layers[0]![1].Properties).toMatchObject({
      CompatibleArchitectures: ["arm64"],
      CompatibleRuntimes: ["python3.12"],
    });
  });

  it("has a plugin builder on Python 3.12 with room for pip", () => {
    expect(resources[fnId.builder]!.Properties).toMatchObject({
      Runtime: "python3.12",
      Handler: "handler.handler",
      Architectures: ["arm64"],
      Timeout: 900,
      MemorySize: 2048,
      EphemeralStorage: { Size: 4096 },
    });
  });
});

describe("upgrade schedule", () => {
  it("is an EventBridge rule every 15 minutes targeting upgrade-check (not Scheduler)", () => {
    const rules = ofType("AWS::Events::Rule");
    expect(rules).toHaveLength(1);
    expect(rules[0]![1].Properties).toMatchObject({
      ScheduleExpression: "rate(15 minutes)",
      State: "ENABLED",
      Targets: [
        expect.objectContaining({
          Arn: { "Fn::GetAtt": [fnId["upgrade-check"], "Arn"] },
          RetryPolicy: { MaximumRetryAttempts: 0, MaximumEventAgeInSeconds: 900 },
        }),
      ],
    });
    expect(ofType("AWS::Scheduler::Schedule")).toHaveLength(0);
    daemon.template.hasResourceProperties("AWS::Lambda::Permission", {
      FunctionName: { "Fn::GetAtt": [fnId["upgrade-check"], "Arn"] },
      Principal: "events.amazonaws.com",
    });
  });
});

/** Full resource path of every API Gateway method, with what it integrates. */
interface Route {
  method: string;
  path: string;
  target: string;
  streaming: boolean;
  uri: string;
  props: Json;
}

function routes(): Route[] {
  const restApi = ofType("AWS::ApiGateway::RestApi")[0]![0];
  const pathOf = (ref: Json): string => {
    if (ref["Fn::GetAtt"]?.[0] === restApi && ref["Fn::GetAtt"][1] === "RootResourceId") return "";
    const res = resources[ref.Ref]!.Properties;
    return `${pathOf(res.ParentId)}/${res.PathPart}`;
  };
  return ofType("AWS::ApiGateway::Method").map(([, m]) => {
    const uriParts: unknown[] = m.Properties.Integration.Uri["Fn::Join"][1];
    const fnRef = uriParts.find((p): p is Json => typeof p === "object" && p !== null && "Fn::GetAtt" in p)!;
    const uri = uriParts.map((p) => (typeof p === "string" ? p : "<ref>")).join("");
    return {
      method: m.Properties.HttpMethod,
      path: pathOf(m.Properties.ResourceId) || "/",
      target: fnRef["Fn::GetAtt"][0],
      streaming: m.Properties.Integration.ResponseTransferMode === "STREAM",
      uri,
      props: m.Properties,
    };
  });
}

describe("api", () => {
  const expected: Array<[method: string, path: string, handler: HandlerName, streaming: boolean]> = [
    ["ANY", "/", "management", false],
    ["ANY", "/{proxy+}", "management", false],
    ["ANY", "/plugin/{tenant_id}/management/{proxy+}", "management", false],
    ["ANY", "/plugin/{tenant_id}/endpoint/{proxy+}", "management", false],
    // Raw bytes: only streamed answers reach Dify as bytes whatever its Accept header.
    ["ANY", "/plugin/{tenant_id}/asset/{proxy+}", "dispatch", true],
    ["ANY", "/plugin/{tenant_id}/extract-asset", "dispatch", true],
    ["ANY", "/plugin/{tenant_id}/debugging/{proxy+}", "management", false],
    ["ANY", "/v2/invoke/extract", "management", false],
    ["GET", "/health/check", "management", false],
    ["POST", "/plugin/{tenant_id}/dispatch/{proxy+}", "dispatch", true],
    ["POST", "/v2/invoke/dispatch/{proxy+}", "dispatch", true],
    ["ANY", "/e/{hook_id}", "public-endpoint", true],
    ["ANY", "/e/{hook_id}/{proxy+}", "public-endpoint", true],
    ["POST", "/backwards-invocation/transaction", "backwards-invocation", true],
  ];

  it("routes every path to the right function, and nothing else", () => {
    const actual = routes()
      .map((r) => `${r.method} ${r.path} -> ${r.target}${r.streaming ? " (stream)" : ""}`)
      .sort();
    const wanted = expected.map(([m, p, h, s]) => `${m} ${p} -> ${fnId[h]}${s ? " (stream)" : ""}`).sort();
    expect(actual).toEqual(wanted);
  });

  it("streams dispatch, public endpoint and backwards invocation through InvokeWithResponseStream, up to the stream timeout", () => {
    for (const r of routes()) {
      if (r.streaming) {
        expect(r.uri).toMatch(/:lambda:path\/2021-11-15\/functions\/<ref>\/response-streaming-invocations$/);
        expect(r.props.Integration.TimeoutInMillis).toBe(630_000);
      } else {
        expect(r.uri).toMatch(/:lambda:path\/2015-03-31\/functions\/<ref>\/invocations$/);
        expect(r.props.Integration.ResponseTransferMode).toBeUndefined();
        // Buffered integrations keep API Gateway's default 29 s (no quota increase needed).
        expect(r.props.Integration.TimeoutInMillis).toBeUndefined();
      }
      expect(r.props.Integration.Type).toBe("AWS_PROXY");
    }
  });

  it("leaves authentication to the handlers: no API keys, authorizers or usage plans", () => {
    for (const r of routes()) {
      expect(r.props.AuthorizationType).toBe("NONE");
      expect(r.props.ApiKeyRequired).not.toBe(true);
    }
    for (const type of ["AWS::ApiGateway::ApiKey", "AWS::ApiGateway::UsagePlan", "AWS::ApiGateway::Authorizer"]) {
      expect(ofType(type)).toHaveLength(0);
    }
  });

  it("is a Regional REST API that base64-encodes only binary request bodies: JSON reaches the handlers as text", () => {
    const apis = ofType("AWS::ApiGateway::RestApi");
    expect(apis).toHaveLength(1);
    const api = apis[0]![1].Properties;
    expect(api.EndpointConfiguration).toEqual({ Types: ["REGIONAL"] });
    const binary = (contentType: string) =>
      (api.BinaryMediaTypes as string[]).some((entry) => {
        const [t, s] = entry.split("/");
        const [ct, cs] = contentType.split("/");
        return (t === "*" || t === ct) && (s === "*" || s === cs);
      });
    // Base64 would take a third of Lambda's 6 MB event from every JSON body (a 3.3 MB inline image).
    for (const text of ["application/json", "text/plain", "application/x-www-form-urlencoded"])
      expect(binary(text), text).toBe(false);
    for (const bytes of ["multipart/form-data", "application/octet-stream", "image/png", "application/zip"])
      expect(binary(bytes), bytes).toBe(true);
  });

  it("logs access as JSON, logs errors, and throttles the stage", () => {
    const stages = ofType("AWS::ApiGateway::Stage");
    expect(stages).toHaveLength(1);
    const stage = stages[0]![1].Properties;
    expect(stage.StageName).toBe("prod");
    expect(JSON.parse(stage.AccessLogSetting.Format)).toMatchObject({
      requestId: "$context.requestId",
      status: "$context.status",
    });
    expect(stage.AccessLogSetting.DestinationArn).toBeDefined();
    expect(stage.MethodSettings).toEqual([
      expect.objectContaining({
        HttpMethod: "*",
        ResourcePath: "/*",
        LoggingLevel: "ERROR",
        DataTraceEnabled: false,
        ThrottlingRateLimit: 100,
        ThrottlingBurstLimit: 200,
      }),
    ]);
  });

  it("answers paths API Gateway cannot route with upstream's 404 body", () => {
    daemon.template.hasResourceProperties("AWS::ApiGateway::GatewayResponse", {
      ResponseType: "MISSING_AUTHENTICATION_TOKEN",
      StatusCode: "404",
      ResponseTemplates: { "application/json": NOT_FOUND_BODY },
    });
    expect(JSON.parse(NOT_FOUND_BODY)).toEqual({ code: "not_found", message: "route not found" });
  });

  it("answers API Gateway's own failures (too large, timeout, throttled, handler not run) in the daemon's error envelope", () => {
    for (const [type, status, code] of [
      ["REQUEST_TOO_LARGE", "413", -400],
      ["INTEGRATION_TIMEOUT", "504", -500],
      ["THROTTLED", "429", -500],
      ["DEFAULT_5XX", "502", -500],
    ] as const) {
      const [, response] = ofType("AWS::ApiGateway::GatewayResponse").find(
        ([, r]) => r.Properties.ResponseType === type,
      )!;
      expect(response.Properties.StatusCode).toBe(status);
      const envelope = JSON.parse(response.Properties.ResponseTemplates["application/json"]);
      expect(envelope.code).toBe(code);
      expect(envelope.data).toBeNull();
      // Dify parses the message as JSON to find the error type.
      expect(JSON.parse(envelope.message)).toMatchObject({
        error_type: expect.stringMatching(/^PluginDaemon/),
        message: expect.any(String),
      });
    }
  });

  it("lets API Gateway invoke exactly the four API handlers, from this API only", () => {
    const fromApi = ofType("AWS::Lambda::Permission").filter(
      ([, p]) => p.Properties.Principal === "apigateway.amazonaws.com",
    );
    const targets = fromApi.map(([, p]) => p.Properties.FunctionName["Fn::GetAtt"][0]).sort();
    expect(targets).toEqual(
      [fnId.management, fnId.dispatch, fnId["public-endpoint"], fnId["backwards-invocation"]].sort(),
    );
    const restApi = ofType("AWS::ApiGateway::RestApi")[0]![0];
    for (const [, p] of fromApi) {
      expect(JSON.stringify(p.Properties.SourceArn)).toContain(JSON.stringify({ Ref: restApi }));
    }
  });
});

/** Every Allow statement of every policy attached to a role, keyed by role logical id. */
function statementsByRole(): Map<string, Json[]> {
  const byRole = new Map<string, Json[]>();
  const add = (role: string, statements: Json[]) => byRole.set(role, [...(byRole.get(role) ?? []), ...statements]);
  for (const [id, r] of ofType("AWS::IAM::Role")) {
    for (const p of r.Properties.Policies ?? []) add(id, p.PolicyDocument.Statement);
    if (!byRole.has(id)) byRole.set(id, []);
  }
  for (const [, p] of ofType("AWS::IAM::Policy")) {
    for (const role of p.Properties.Roles) add(role.Ref, p.Properties.PolicyDocument.Statement);
  }
  return byRole;
}

const list = <T>(v: T | T[]): T[] => (Array.isArray(v) ? v : [v]);

/** Resource ARNs as text, with references written `<LogicalId.Attr>` / `<Ref>` like cdk-nag does. */
function resourceText(resource: unknown): string {
  if (typeof resource === "string") return resource;
  const r = resource as Json;
  if (r.Ref) return `<${r.Ref}>`;
  if (r["Fn::GetAtt"]) return `<${r["Fn::GetAtt"].join(".")}>`;
  if (r["Fn::Join"]) return (r["Fn::Join"][1] as unknown[]).map(resourceText).join(r["Fn::Join"][0]);
  throw new Error(`unexpected resource ${JSON.stringify(resource)}`);
}

describe("iam", () => {
  const roleOf = (fn: string): string => resources[fn]!.Properties.Role["Fn::GetAtt"][0];
  const actionsOf = (role: string): Set<string> =>
    new Set((statementsByRole().get(role) ?? []).flatMap((s) => list<string>(s.Action)));
  const grants = (role: string, action: string): string[] =>
    (statementsByRole().get(role) ?? [])
      .filter((s) => list(s.Action).includes(action))
      .flatMap((s) => list(s.Resource).map(resourceText));

  it("never grants Action * or Resource *, and wildcards only where a reason is written down", () => {
    const { stack } = daemon;
    const bucket = logicalId(stack, stack.packages.bucket);
    const prefix = "difypluginda-plugin-";
    // Each pattern has its written reason at the code that grants it (infra/nag.ts allowWildcards).
    const allowed = [
      new RegExp(`^<${bucket}\\.Arn>/(packages|assets|plugin-code|plugin-storage)/\\*$`),
      new RegExp(`^arn:<AWS::Partition>:lambda:<AWS::Region>:<AWS::AccountId>:function:${prefix}\\*$`),
      new RegExp(
        `^arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws/lambda/${prefix}\\*(:log-stream:\\*)?$`,
      ),
      new RegExp(`^<${fnId["install-worker"]}\\.Arn>:\\*$`),
    ];
    let statements = 0;
    for (const [role, list_] of statementsByRole()) {
      for (const s of list_) {
        statements++;
        expect(s.Effect, role).toBe("Allow");
        for (const action of list<string>(s.Action)) expect(action, role).not.toMatch(/\*/);
        for (const r of list(s.Resource)) {
          const text = resourceText(r);
          expect(text, role).not.toBe("*");
          if (text.includes("*"))
            expect(
              allowed.some((a) => a.test(text)),
              `${role}: ${text}`,
            ).toBe(true);
        }
      }
    }
    expect(statements).toBeGreaterThan(20);
  });

  it("attaches no AWS managed policy except API Gateway's logging role", () => {
    for (const [id, r] of ofType("AWS::IAM::Role")) {
      const managed = JSON.stringify(r.Properties.ManagedPolicyArns ?? []);
      if (id.startsWith("ApiRestApiCloudWatchRole")) expect(managed).toContain("AmazonAPIGatewayPushToCloudWatchLogs");
      else expect(managed, id).toBe("[]");
    }
  });

  it("gives the plugin execution role CloudWatch Logs only", () => {
    const pluginRole = logicalId(daemon.stack, daemon.stack.pluginRuntime.pluginRole);
    expect([...actionsOf(pluginRole)].sort()).toEqual([
      "logs:CreateLogGroup",
      "logs:CreateLogStream",
      "logs:PutLogEvents",
    ]);
    expect(resources[pluginRole]!.Properties.AssumeRolePolicyDocument.Statement).toEqual([
      expect.objectContaining({ Principal: { Service: "lambda.amazonaws.com" } }),
    ]);
  });

  it("lets only management and install-worker manage plugin functions, passing only the plugin role to Lambda", () => {
    const pluginRole = logicalId(daemon.stack, daemon.stack.pluginRuntime.pluginRole);
    const managers = ["management", "install-worker"] as const;
    for (const name of HANDLER_NAMES) {
      const role = roleOf(fnId[name]);
      const manages = actionsOf(role).has("lambda:CreateFunction");
      expect(manages, name).toBe((managers as readonly string[]).includes(name));
      if (!manages) {
        expect(actionsOf(role).has("iam:PassRole"), name).toBe(false);
        continue;
      }
      for (const action of [
        "lambda:CreateFunction",
        "lambda:UpdateFunctionCode",
        "lambda:UpdateFunctionConfiguration",
        "lambda:DeleteFunction",
        "lambda:GetFunction",
        "lambda:InvokeFunction",
      ]) {
        expect(grants(role, action), `${name} ${action}`).toContain(
          "arn:<AWS::Partition>:lambda:<AWS::Region>:<AWS::AccountId>:function:difypluginda-plugin-*",
        );
      }
      const passRole = statementsByRole()
        .get(role)!
        .filter((s) => list(s.Action).includes("iam:PassRole"));
      expect(passRole).toEqual([
        expect.objectContaining({
          Resource: { "Fn::GetAtt": [pluginRole, "Arn"] },
          Condition: { StringEquals: { "iam:PassedToService": "lambda.amazonaws.com" } },
        }),
      ]);
      expect(grants(role, "lambda:GetLayerVersion")).toEqual([expect.stringMatching(/^<PluginRuntimeLayer/)]);
      expect(grants(role, "lambda:InvokeFunction")).toContain(`<${fnId.builder}.Arn>`);
    }
  });

  it("lets upgrade-check start install tasks and continue its own run, and nothing more of Lambda", () => {
    const role = roleOf(fnId["upgrade-check"]);
    expect([...actionsOf(role)].filter((a) => a.startsWith("lambda:"))).toEqual(["lambda:InvokeFunction"]);
    expect(grants(role, "lambda:InvokeFunction").sort()).toEqual(
      [`<${fnId["install-worker"]}.Arn>`, `<${fnId["install-worker"]}.Arn>:*`, `<${fnId["upgrade-check"]}.Arn>`].sort(),
    );
  });

  it("lets the streaming handlers invoke plugin functions and nothing more of Lambda", () => {
    for (const name of ["dispatch", "public-endpoint"] as const) {
      const role = roleOf(fnId[name]);
      const lambdaActions = [...actionsOf(role)].filter((a) => a.startsWith("lambda:"));
      expect(lambdaActions).toEqual(["lambda:InvokeFunction"]);
      expect(grants(role, "lambda:InvokeFunction")).toEqual([
        "arn:<AWS::Partition>:lambda:<AWS::Region>:<AWS::AccountId>:function:difypluginda-plugin-*",
      ]);
    }
    const backwards = roleOf(fnId["backwards-invocation"]);
    expect([...actionsOf(backwards)].filter((a) => a.startsWith("lambda:"))).toEqual([]);
  });

  it("reads each secret by its own ARN, and only where it is used", () => {
    const { stack } = daemon;
    const daemonKey = `<${logicalId(stack, stack.daemonKey.secret)}>`;
    const innerKey = expect.stringMatching(/^<DifyInnerApiApiKey/);
    const secretReaders = (secret: string) =>
      HANDLER_NAMES.filter((n) => grants(roleOf(fnId[n]), "secretsmanager:GetSecretValue").includes(secret));
    expect(secretReaders(daemonKey).sort()).toEqual([
      "backwards-invocation",
      "dispatch",
      "management",
      "public-endpoint",
    ]);
    for (const name of HANDLER_NAMES) {
      for (const r of grants(roleOf(fnId[name]), "secretsmanager:GetSecretValue"))
        expect([daemonKey, innerKey]).toContainEqual(r);
    }
    expect(grants(roleOf(fnId["install-worker"]), "secretsmanager:GetSecretValue")).toEqual([]);
  });

  it("lets each handler read, write and delete exactly the bucket keys its code produces", async () => {
    // The keys, from the code that makes them; a large storage value through PluginStorage itself.
    const uid = uniqueIdentifier(`langgenius/openai:0.0.20@${"a".repeat(64)}`);
    const stored: string[] = [];
    const recording: BlobStore = {
      put: async (k) => void stored.push(k),
      get: async () => undefined,
      exists: async () => false,
      delete: async () => undefined,
    };
    await new PluginStorage(new SqliteItemStore({ filename: ":memory:" }), recording).set(
      "t1",
      "org/p",
      "big",
      new Uint8Array(INLINE_MAX_BYTES + 1),
      2 ** 30,
    );
    const key = {
      package: packageBlobKey(uid),
      asset: assetBlobKey("0123abcd.svg"),
      code: pluginCodeKey(uid, "python3.12", "arm64"),
      storage: stored[0]!,
    };
    expect(key.storage).toBeDefined();

    type Access = "s3:GetObject" | "s3:PutObject" | "s3:DeleteObject";
    const uses: Array<[runner: HandlerName | "builder", keyOf: keyof typeof key, Access[], why: string]> = [
      [
        "management",
        "package",
        ["s3:GetObject", "s3:PutObject"],
        "upload, decode, marketplace fetch on fetch/manifest",
      ],
      ["management", "asset", ["s3:PutObject"], "assets extracted at upload"],
      ["dispatch", "asset", ["s3:GetObject"], "GET /asset/{id}"],
      ["dispatch", "package", ["s3:GetObject"], "extract-asset"],
      [
        "backwards-invocation",
        "storage",
        ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
        "plugin storage over 64 KiB",
      ],
      ["install-worker", "package", ["s3:GetObject", "s3:PutObject"], "marketplace and GitHub installs"],
      ["install-worker", "asset", ["s3:PutObject"], "assets of downloaded packages"],
      [
        "install-worker",
        "code",
        ["s3:GetObject", "s3:DeleteObject"],
        "CreateFunction reads the zip with the caller's permissions",
      ],
      ["upgrade-check", "package", ["s3:PutObject"], "upgrades download the new package"],
      ["builder", "package", ["s3:GetObject"], "the package to build"],
      ["builder", "code", ["s3:PutObject"], "the built zip"],
    ];
    const bucket = `<${logicalId(daemon.stack, daemon.stack.packages.bucket)}.Arn>/`;
    const covers = (pattern: string, objectKey: string) =>
      pattern.startsWith(bucket) &&
      new RegExp(
        `^${pattern
          .slice(bucket.length)
          .split("*")
          .map((p) => p.replace(/[.+?^${}()|[\]\\/]/g, "\\$&"))
          .join(".*")}$`,
      ).test(objectKey);
    for (const [runner, keyOf, actions, why] of uses) {
      const role = roleOf(fnId[runner]);
      for (const action of actions) {
        expect(
          grants(role, action).some((p) => covers(p, key[keyOf])),
          `${runner} ${action} ${key[keyOf]} (${why})`,
        ).toBe(true);
      }
    }
  });

  it("scopes the plugin builder to reading packages/ and writing plugin-code/", () => {
    const role = roleOf(fnId.builder);
    const bucket = logicalId(daemon.stack, daemon.stack.packages.bucket);
    expect(grants(role, "s3:GetObject")).toEqual([`<${bucket}.Arn>/packages/*`]);
    expect(grants(role, "s3:PutObject")).toEqual([`<${bucket}.Arn>/plugin-code/*`]);
    expect([...actionsOf(role)].filter((a) => a.startsWith("lambda:") || a.startsWith("dynamodb:"))).toEqual([]);
  });

  it("names the table and its one index, never index/*", () => {
    const table = logicalId(daemon.stack, daemon.stack.table.table);
    for (const name of HANDLER_NAMES) {
      const rs = grants(roleOf(fnId[name]), "dynamodb:GetItem");
      expect(rs.sort()).toEqual([`<${table}.Arn>`, `<${table}.Arn>/index/gsi1`]);
    }
    // Nothing scans the table: every access path is a key or gsi1.
    const scanners = HANDLER_NAMES.filter((n) => actionsOf(roleOf(fnId[n])).has("dynamodb:Scan"));
    expect(scanners).toEqual([]);
  });
});

/** Reasons recorded by `Validations.of(...).acknowledge`, anywhere in the tree. */
function acknowledgments(root: IConstruct): Array<[id: string, reason: unknown]> {
  return root.node
    .findAll()
    .flatMap((c) => c.node.metadata.filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY))
    .flatMap((m) => Object.entries(m.data as Record<string, unknown>));
}

describe("cdk-nag", () => {
  it("reports no unacknowledged AwsSolutions error or warning", () => {
    const report = new AwsSolutionsChecks(daemon.app).validateScope(daemon.stack as Stack);
    const findings = report.violations.map(
      (v) => `${v.severity} ${v.ruleName} at ${v.violatingResources.map((r) => r.constructPath).join(", ")}`,
    );
    expect(findings).toEqual([]);
  });

  it("has a written reason for every acknowledgment", () => {
    const acks = acknowledgments(daemon.stack);
    expect(acks.length).toBeGreaterThan(10);
    for (const [id, reason] of acks) {
      expect(typeof reason, id).toBe("string");
      expect((reason as string).length, id).toBeGreaterThan(40);
    }
    // IAM5 is only ever acknowledged finding by finding, never for a whole resource.
    expect(acks.filter(([id]) => /AwsSolutions-IAM5$/.test(id))).toEqual([]);
  });
});

describe("outputs", () => {
  it("are the stage URL (no trailing slash), the key command, and Dify's settings", () => {
    const outputs = daemon.template.toJSON().Outputs as Json;
    expect(Object.keys(outputs).sort()).toEqual(["DifySettings", "PluginDaemonKeyCommand", "PluginDaemonUrl"]);
    const restApi = logicalId(daemon.stack, daemon.stack.api.restApi);
    expect(outputs.PluginDaemonUrl.Value).toEqual({
      "Fn::Join": [
        "",
        [
          "https://",
          { Ref: restApi },
          ".execute-api.",
          { Ref: "AWS::Region" },
          ".",
          { Ref: "AWS::URLSuffix" },
          "/prod",
        ],
      ],
    });
    const command = resourceText(outputs.PluginDaemonKeyCommand.Value);
    expect(command).toBe(
      `aws secretsmanager get-secret-value --region <AWS::Region> --secret-id <${logicalId(daemon.stack, daemon.stack.daemonKey.secret)}> --query SecretString --output text`,
    );
    const settings = resourceText(outputs.DifySettings.Value);
    for (const name of [
      "PLUGIN_DAEMON_URL=",
      "PLUGIN_DAEMON_KEY=",
      "INNER_API_KEY_FOR_PLUGIN=",
      "ENDPOINT_URL_TEMPLATE=",
      "/e/{hook_id}",
    ]) {
      expect(settings).toContain(name);
    }
  });
});

describe("cdk synth", () => {
  it("synthesises the app from the command line, bundling first and passing cdk-nag", () => {
    expect(cliSynth.status, cliSynth.output).toBe(0);
    const template = JSON.parse(readFileSync(join(cliSynth.outdir, "DifyPluginDaemon.template.json"), "utf8"));
    expect(Object.keys(template.Resources).length).toBeGreaterThan(50);
    // The bundler ran as part of it and reported sizes for every handler.
    const sizes = JSON.parse(readFileSync(join(repoRoot, "dist", "functions", "sizes.json"), "utf8"));
    expect(Object.keys(sizes.functions)).toEqual(expect.arrayContaining([...HANDLER_NAMES]));
    const report = JSON.parse(readFileSync(join(cliSynth.outdir, "validation-report.json"), "utf8"));
    expect(report.pluginReports).toEqual([]);
  });
});
