/**
 * What the daemon needs to run each plugin as its own Python Lambda function:
 * - the plugin layer: the `/opt/dify-plugin-bootstrap` exec wrapper and its Python package in
 *   `/opt/python` (plus the Dify plugin SDK when built by `layers/build-layer.sh`), and the SDK
 *   savings the bootstrap gives its plugin (`/opt/dify-sdk-speedups`), without Docker;
 * - the execution role every plugin function runs with (CloudWatch Logs only: plugins reach Dify
 *   through the daemon's backwards-invocation URL, never through AWS APIs);
 * - the plugin builder, a Python function that turns a stored package into a Lambda code zip
 *   with dependencies installed for the Lambda platform;
 * - the grants for handlers that create, update, delete and invoke plugin functions, all scoped to
 *   the plugin function name prefix.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { isAbsolute, join, relative } from "node:path";
import {
  ArnFormat,
  AssetHashType,
  DockerImage,
  Duration,
  FileSystem,
  RemovalPolicy,
  Size,
  Stack,
  Stage,
} from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import * as lambda from "aws-cdk-lib/aws-lambda";
import * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import { SDK_SPEEDUPS_MODULE, SDK_SPEEDUPS_SOURCE } from "../../src/adapters/sdk-speedups.js";
import { ARN_SEGMENT, acknowledge, allowGranteeWildcards, allowWildcards, literal } from "../nag.js";
import type { PluginArch } from "../settings.js";
import { PACKAGE_BUCKET_PREFIXES, type PackageBucket } from "./package-bucket.js";

export interface PluginRuntimeProps {
  /** Directory with build-layer.sh, plugin-runtime/ and plugin-builder/. */
  readonly layersDir: string;
  /** Every plugin function's name starts with this; IAM is scoped to it. */
  readonly functionPrefix: string;
  readonly arch: PluginArch;
  readonly packageBucket: PackageBucket;
  /** `copy`: the bootstrap alone, no Python needed; `script`: build-layer.sh adds the SDK (a failure fails the synth). @default "copy" */
  readonly layerBuild?: "script" | "copy";
  /** Python version the layer and plugin functions target. @default "3.12" (what the Dify plugin SDK and upstream daemon use) */
  readonly pythonVersion?: "3.12" | "3.13";
  /** @default RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** How long build-layer.sh may run. @default 15 minutes */
  readonly layerBuildTimeout?: Duration;
}

const COPY_HINT =
  "install a Python >= 3.12 with pip and PyPI access for the SDK layer, or synth with -c pluginLayerBuild=copy " +
  "(the bootstrap alone: plugins bring the SDK in their own code, no Python needed here)";

/** Where Lambda finds the exec wrapper (/opt/dify-plugin-bootstrap) and its Python package (/opt/python). */
export const LAYER_BOOTSTRAP = "dify-plugin-bootstrap";
export const LAYER_BOOTSTRAP_PACKAGE = join("python", "dify_lambda_bootstrap");
/** The directory the bootstrap puts on its plugin's PYTHONPATH (/opt/dify-sdk-speedups): a `sitecustomize` loading the savings. */
export const LAYER_SDK_SPEEDUPS = "dify-sdk-speedups";

/**
 * The bootstrap-only layer: `dify-plugin-bootstrap` (executable) and `python/dify_lambda_bootstrap/`,
 * the same layout build-layer.sh produces, without the SDK. Plain file copies: no Python needed.
 */
export function assembleBootstrapLayer(runtimeDir: string, outputDir: string): void {
  copyFileSync(join(runtimeDir, "bootstrap"), join(outputDir, LAYER_BOOTSTRAP));
  chmodSync(join(outputDir, LAYER_BOOTSTRAP), 0o755);
  const packageDir = join(outputDir, LAYER_BOOTSTRAP_PACKAGE);
  mkdirSync(packageDir, { recursive: true });
  const source = join(runtimeDir, "dify_lambda_bootstrap");
  for (const name of readdirSync(source)) {
    if (name.endsWith(".py")) copyFileSync(join(source, name), join(packageDir, name));
  }
}

/**
 * The SDK savings (src/adapters/sdk-speedups.ts) in a layer: the module and a `sitecustomize` that
 * imports it, in a directory of their own that only the plugin's Python has on its path.
 */
export function addSdkSpeedups(layerDir: string): void {
  const dir = join(layerDir, LAYER_SDK_SPEEDUPS);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${SDK_SPEEDUPS_MODULE}.py`), SDK_SPEEDUPS_SOURCE);
  writeFileSync(
    join(dir, "sitecustomize.py"),
    `"""Put on the plugin's PYTHONPATH by dify_lambda_bootstrap: loads the daemon's SDK savings."""\nimport ${SDK_SPEEDUPS_MODULE}  # noqa: F401\n`,
  );
}

/** Every plugin function's exec wrapper points at the layer's bootstrap: refuse a layer without it. */
function checkLayerLayout(layerDir: string): void {
  const wrapper = join(layerDir, LAYER_BOOTSTRAP);
  const entry = join(layerDir, LAYER_BOOTSTRAP_PACKAGE, "__main__.py");
  if (!existsSync(wrapper) || (statSync(wrapper).mode & 0o111) === 0) {
    throw new Error(
      `PluginRuntime: the layer has no executable ${LAYER_BOOTSTRAP} (/opt/${LAYER_BOOTSTRAP}); it would start no plugin`,
    );
  }
  if (!existsSync(entry)) {
    throw new Error(`PluginRuntime: the layer has no ${LAYER_BOOTSTRAP_PACKAGE}/__main__.py; it would start no plugin`);
  }
}

/** Size of a layer's staged asset directory (staging runs when the layer is constructed). */
function stagedBytes(layer: lambda.LayerVersion): number {
  const asset = layer.node.tryFindChild("Code") as { assetPath?: string } | undefined;
  const outdir = Stage.of(layer)?.outdir;
  if (!asset?.assetPath || !outdir) return 0;
  const path = isAbsolute(asset.assetPath) ? asset.assetPath : join(outdir, asset.assetPath);
  return existsSync(path) ? directoryBytes(path) : 0;
}

/** Bytes of every file below `dir`: what the layer takes of a function's 250 MB unzipped quota. */
export function directoryBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += directoryBytes(path);
    else if (entry.isFile()) total += statSync(path).size;
  }
  return total;
}

/** What plugin-management handlers may do to plugin functions. */
const RUNTIME_MANAGEMENT_ACTIONS = [
  "lambda:CreateFunction",
  "lambda:UpdateFunctionCode",
  "lambda:UpdateFunctionConfiguration",
  "lambda:DeleteFunction",
  "lambda:GetFunction",
  // The SDK's "function active/updated" waiters poll this one.
  "lambda:GetFunctionConfiguration",
  // Also authorises InvokeWithResponseStream: IAM has no separate action for it.
  "lambda:InvokeFunction",
  // Plugin functions are created with tags saying which package they run; GetFunction only
  // returns a tagged function with ListTags, and the daemon checks ownership by those tags.
  "lambda:TagResource",
  "lambda:ListTags",
];

export class PluginRuntime extends Construct {
  readonly layer: lambda.LayerVersion;
  /** Unzipped bytes of the layer, which count against each plugin function's 250 MB. */
  readonly layerUnzippedBytes: number;
  readonly pluginRole: iam.Role;
  readonly builder: lambda.Function;
  readonly functionPrefix: string;
  readonly arch: PluginArch;
  /** ARN pattern matching every plugin function (and its versions/aliases) of this stack. */
  readonly pluginFunctionArns: string[];

  constructor(scope: Construct, id: string, props: PluginRuntimeProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.functionPrefix = props.functionPrefix;
    this.arch = props.arch;
    const pythonVersion = props.pythonVersion ?? "3.12";
    const pythonRuntime = pythonVersion === "3.13" ? lambda.Runtime.PYTHON_3_13 : lambda.Runtime.PYTHON_3_12;
    const lambdaArch = props.arch === "arm64" ? lambda.Architecture.ARM_64 : lambda.Architecture.X86_64;

    this.layer = new lambda.LayerVersion(this, "Layer", {
      description: `Dify plugin SDK and bootstrap for Python ${pythonVersion} (${props.arch})`,
      code: this.layerCode(props, pythonVersion),
      compatibleArchitectures: [lambdaArch],
      compatibleRuntimes: [pythonRuntime],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.layerUnzippedBytes = stagedBytes(this.layer);

    this.pluginFunctionArns = [
      stack.formatArn({
        service: "lambda",
        resource: "function",
        resourceName: `${props.functionPrefix}*`,
        arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      }),
    ];

    this.pluginRole = new iam.Role(this, "PluginRole", {
      description: "Execution role of plugin functions: CloudWatch Logs only",
      assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
    });
    const pluginLogGroups = stack.formatArn({
      service: "logs",
      resource: "log-group",
      resourceName: `/aws/lambda/${props.functionPrefix}*`,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    this.pluginRole.addToPolicy(
      new iam.PolicyStatement({ actions: ["logs:CreateLogGroup"], resources: [pluginLogGroups] }),
    );
    this.pluginRole.addToPolicy(
      new iam.PolicyStatement({
        actions: ["logs:CreateLogStream", "logs:PutLogEvents"],
        resources: [`${pluginLogGroups}:log-stream:*`],
      }),
    );
    allowWildcards(this.pluginRole, {
      finding: new RegExp(
        `^Resource::arn:${ARN_SEGMENT}:logs:${ARN_SEGMENT}:${ARN_SEGMENT}:log-group:/aws/lambda/${literal(props.functionPrefix)}\\*(:log-stream:\\*)?$`,
      ),
      reason:
        "Plugin functions are created at install time, so their log groups (/aws/lambda/<prefix><id>) are only known by this " +
        "stack's plugin function prefix; log stream names are chosen by Lambda.",
    });

    const builderLogs = new logs.LogGroup(this, "BuilderLogs", {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const builderRole = new iam.Role(this, "BuilderRole", {
      description: "Plugin builder: its log group and the package bucket prefixes it uses",
      assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
    });
    builderLogs.grantWrite(builderRole);
    this.builder = new lambda.Function(this, "Builder", {
      role: builderRole,
      description:
        "Builds a plugin's Lambda code zip (its uv.lock or requirements for the Lambda platform) from its stored package",
      runtime: pythonRuntime,
      // The plugins' architecture: source distributions are only built on the platform they run on.
      architecture: lambdaArch,
      handler: "handler.handler",
      code: lambda.Code.fromAsset(join(props.layersDir, "plugin-builder"), {
        exclude: ["__pycache__", "*.pyc", "tests"],
      }),
      // uv/pip resolve, download, build and unpack: CPU and /tmp bound.
      memorySize: 2048,
      ephemeralStorageSize: Size.gibibytes(4),
      timeout: Duration.minutes(15),
      loggingFormat: lambda.LoggingFormat.JSON,
      applicationLogLevelV2: lambda.ApplicationLogLevel.INFO,
      systemLogLevelV2: lambda.SystemLogLevel.WARN,
      logGroup: builderLogs,
    });
    props.packageBucket.grantObjects(this.builder, { prefixes: [PACKAGE_BUCKET_PREFIXES.packages], read: true });
    props.packageBucket.grantObjects(this.builder, { prefixes: [PACKAGE_BUCKET_PREFIXES.pluginCode], write: true });
    acknowledge(this.builder, {
      id: "AwsSolutions-L1",
      reason: `Python ${pythonVersion} on purpose: the Dify plugin SDK targets it and the upstream daemon pins it; the builder must match the plugins' runtime.`,
    });
  }

  /**
   * The layer is assembled on the host (no Docker). `copy` lays out the bootstrap alone, from
   * plugin-runtime/, with no Python needed: plugins bring the SDK in their own code zip (the
   * builder installs their requirements, which name dify_plugin), so it is shipped once.
   * `script` runs build-layer.sh, which adds the SDK as well; a failed build fails the synth,
   * because a layer without /opt/dify-plugin-bootstrap starts no plugin at all.
   * The asset hash covers the build inputs and the architecture, so an unchanged layer is not
   * rebuilt when cdk.out already holds it.
   */
  private layerCode(props: PluginRuntimeProps, pythonVersion: string): lambda.Code {
    const layersDir = props.layersDir;
    const runtimeDir = join(layersDir, "plugin-runtime");
    const script = join(layersDir, "build-layer.sh");
    const mode = props.layerBuild ?? "copy";
    const timeout = props.layerBuildTimeout ?? Duration.minutes(15);
    if (!existsSync(runtimeDir)) throw new Error(`PluginRuntime: ${runtimeDir} is missing`);
    if (mode === "script" && !existsSync(script)) {
      throw new Error(`PluginRuntime: ${relative(process.cwd(), script)} is missing; ${COPY_HINT}`);
    }
    const fingerprint = FileSystem.fingerprint(layersDir, {
      exclude: ["build", "plugin-builder", "**/__pycache__", "*.pyc", "**/.venv"],
      // The savings are written from TypeScript, not from a file under layersDir.
      extraHash: `${props.arch}:${pythonVersion}:${mode}:${createHash("sha256").update(SDK_SPEEDUPS_SOURCE).digest("hex")}`,
    });

    return lambda.Code.fromAsset(layersDir, {
      assetHashType: AssetHashType.CUSTOM,
      assetHash: fingerprint,
      bundling: {
        // Never pulled: local bundling below either succeeds or throws.
        image: DockerImage.fromRegistry("public.ecr.aws/sam/build-python3.12"),
        local: {
          tryBundle(outputDir: string): boolean {
            if (mode === "copy") {
              assembleBootstrapLayer(runtimeDir, outputDir);
            } else {
              const run = spawnSync("bash", [script, outputDir, props.arch, pythonVersion], {
                // The script's stdout must not mix with `cdk synth` output.
                stdio: ["ignore", process.stderr, process.stderr],
                timeout: timeout.toMilliseconds(),
              });
              if (run.status !== 0) {
                const why = run.error ? run.error.message : `exit status ${run.status ?? run.signal}`;
                throw new Error(`PluginRuntime: build-layer.sh failed (${why}); ${COPY_HINT}`);
              }
            }
            addSdkSpeedups(outputDir);
            checkLayerLayout(outputDir);
            return true;
          },
        },
      },
    });
  }

  /** Create, update, delete, read and invoke plugin functions; pass the plugin role; use the layer. */
  grantRuntimeManagement(grantee: iam.IGrantable): void {
    iam.Grant.addToPrincipal({ grantee, actions: RUNTIME_MANAGEMENT_ACTIONS, resourceArns: this.pluginFunctionArns });
    this.allowPluginFunctionWildcard(grantee);
    iam.Grant.addToPrincipal({
      grantee,
      actions: ["lambda:GetLayerVersion"],
      resourceArns: [this.layer.layerVersionArn],
    });
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ["iam:PassRole"],
        resources: [this.pluginRole.roleArn],
        conditions: { StringEquals: { "iam:PassedToService": "lambda.amazonaws.com" } },
      }),
    );
  }

  /** Invoke plugin functions (buffered or streaming). */
  grantInvokePlugins(grantee: iam.IGrantable): void {
    iam.Grant.addToPrincipal({ grantee, actions: ["lambda:InvokeFunction"], resourceArns: this.pluginFunctionArns });
    this.allowPluginFunctionWildcard(grantee);
  }

  private allowPluginFunctionWildcard(grantee: iam.IGrantable): void {
    allowGranteeWildcards(grantee, {
      finding: new RegExp(
        `^Resource::arn:${ARN_SEGMENT}:lambda:${ARN_SEGMENT}:${ARN_SEGMENT}:function:${literal(this.functionPrefix)}\\*$`,
      ),
      reason:
        "Plugin functions are created at install time, one per plugin package, so they are only known by this stack's " +
        "function name prefix, which bounds the wildcard.",
    });
  }

  /** Invoke the plugin builder. */
  grantInvokeBuilder(grantee: iam.IGrantable): void {
    iam.Grant.addToPrincipal({ grantee, actions: ["lambda:InvokeFunction"], resourceArns: [this.builder.functionArn] });
  }
}
