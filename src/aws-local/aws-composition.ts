/**
 * The daemon's AWS composition on one machine: the CDK stack synthesised and deployed onto local
 * stand-ins for the AWS services it uses —
 * - S3, DynamoDB, Secrets Manager: moto, reached through the real SDK clients;
 * - Lambda: the Lambda service emulator (lambda-service.ts) whose functions run in local
 *   execution environments (function-runner.ts): the handler bundles on the Node.js runtime
 *   client, the plugin builder and every plugin function on the Python one, plugins through the
 *   plugin layer's real bootstrap;
 * - API Gateway: the stack's REST API (api-gateway.ts); EventBridge: its rate rule
 *   (event-schedule.ts).
 * Every handler talks to these through AWS_ENDPOINT_URL (moto) and AWS_ENDPOINT_URL_LAMBDA.
 */
import { mkdir, rm } from "node:fs/promises";
import { arch } from "node:os";
import { join } from "node:path";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import { createDynamoDbClient, createS3Client } from "../adapters/aws/clients.js";
import { createSecretsManagerClient } from "../adapters/aws/secrets.js";
import type { DaemonEnvironment, DaemonEnvName } from "../config.js";
import { type AccessLogEntry, type LocalApiGateway, startApiGateway } from "./api-gateway.js";
import { type RunningSchedules, startSchedules } from "./event-schedule.js";
import { LocalFunctionRunner, type RunnerEvent } from "./function-runner.js";
import { type LambdaFunction, LambdaService } from "./lambda-service.js";
import { type Deployment, deployStack } from "./local-deployment.js";
import { ManagedRuntimes } from "./managed-runtimes.js";
import { type AwsEmulator, freePort, startAwsEmulator } from "./moto-server.js";
import { type SynthesizedStack, synthesizeStack } from "./stack-template.js";
import { REGION } from "./template-values.js";

export interface CompositionOptions {
  host: string;
  port: number;
  /** CDK context, as `-c key=value`. */
  context: Record<string, string>;
  /** Handler bundles (scripts/bundle.mjs output). */
  bundleDir: string;
  /** Scratch space for this run (assembly, unpacked code, each environment's /tmp); removed at the end. */
  stateDir: string;
  /** Kept across runs: runtime virtualenvs, the plugin builder's package cache. */
  cacheDir: string;
  uv: string;
  python?: string;
  /** Chosen values for the daemon key and the inner-API key (generated otherwise, as the stack does). */
  daemonKey?: string;
  innerApiKey?: string;
  /** API Gateway limits, shortened by tests. */
  streamIdleMs?: number;
  onRunnerEvent?: (event: RunnerEvent) => void;
  onAccess?: (entry: AccessLogEntry) => void;
  onAsyncFailure?: (fn: LambdaFunction, error: { errorType: string; errorMessage: string }) => void;
}

export interface CompositionOutputs {
  PluginDaemonUrl: string;
  daemonKey: string;
  innerApiKey: string;
  daemonKeySecretArn: string;
  innerApiKeySecretArn: string;
  awsEndpoint: string;
  lambdaEndpoint: string;
  environmentsUrl: string;
  tableName: string;
  bucketName: string;
  /** Function names by the stack's logical ids. */
  functions: Record<string, string>;
  stackName: string;
  pluginArch: string;
}

export interface RunningComposition {
  outputs: CompositionOutputs;
  stack: SynthesizedStack;
  deployment: Deployment;
  skippedSchedules: string[];
  stop(): Promise<void>;
}

/** What plugin functions run on here: this machine's architecture, so the builder picks wheels that load. */
export const HOST_PLUGIN_ARCH = arch() === "arm64" ? "arm64" : "x86_64";

/** This machine's way to the internet (a proxy, its CA bundle, a package index), which functions here need as Lambda's network does not. */
const NETWORK_SETTINGS = [
  "HTTP_PROXY",
  "HTTPS_PROXY",
  "NO_PROXY",
  "http_proxy",
  "https_proxy",
  "no_proxy",
  "SSL_CERT_FILE",
  "SSL_CERT_DIR",
  "REQUESTS_CA_BUNDLE",
  "CURL_CA_BUNDLE",
  "PIP_CERT",
  "NODE_EXTRA_CA_CERTS",
  "PIP_INDEX_URL",
  "PIP_EXTRA_INDEX_URL",
  "UV_INDEX_URL",
  "UV_DEFAULT_INDEX",
  "UV_NATIVE_TLS",
];

const networkSettings = (): Record<string, string> =>
  Object.fromEntries(NETWORK_SETTINGS.flatMap((name) => (process.env[name] ? [[name, process.env[name]!]] : [])));

/** The bootstrap's log line when the plugin process answered its first heartbeat. */
const PLUGIN_READY = /\[dify-bootstrap\] INFO plugin ready in/;

export async function startAwsComposition(options: CompositionOptions): Promise<RunningComposition> {
  const cleanups: Array<() => Promise<unknown>> = [];
  const stop = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  };
  try {
    await mkdir(options.stateDir, { recursive: true });
    cleanups.push(() => rm(options.stateDir, { recursive: true, force: true }));

    const moto: AwsEmulator = await startAwsEmulator();
    cleanups.push(() => moto.stop());
    const clientConfig = {
      endpoint: moto.endpoint,
      region: REGION,
      credentials: { accessKeyId: "test", secretAccessKey: "test" },
    };
    const s3 = createS3Client({ ...clientConfig, forcePathStyle: true });
    const dynamodb = createDynamoDbClient(clientConfig);
    const secrets = createSecretsManagerClient(clientConfig);
    cleanups.push(async () => [s3, dynamodb, secrets].forEach((c) => c.destroy()));

    const port = options.port === 0 ? await freePort() : options.port;
    const publicHost = options.host === "0.0.0.0" || options.host === "::" ? "127.0.0.1" : options.host;
    const context: Record<string, string> = {
      pluginArch: HOST_PLUGIN_ARCH,
      // Plugin functions call back through the local API Gateway.
      daemonPublicUrl: `http://${publicHost}:${port}/{stage}`,
      ...options.context,
    };
    const stack = synthesizeStack({ context, bundleDir: options.bundleDir, outdir: join(options.stateDir, "cdk.out") });

    let builderName: string | undefined;
    const layers = new Map<string, string>();
    const runtimes = new ManagedRuntimes({
      cacheDir: join(options.cacheDir, "runtimes"),
      uv: options.uv,
      pythonCandidates: options.python ? [options.python] : [],
    });
    let lambdaEndpoint = "";
    const runner = new LocalFunctionRunner({
      stateDir: join(options.stateDir, "lambda"),
      runtimes,
      layers,
      fetchCode: async (bucket, key) => {
        const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        return object.Body!.transformToByteArray();
      },
      environment: (fn) => ({
        ...networkSettings(),
        // The execution role's credentials, as Lambda puts them in every environment.
        AWS_ACCESS_KEY_ID: "test",
        AWS_SECRET_ACCESS_KEY: "test",
        AWS_SESSION_TOKEN: "aws-local",
        AWS_REGION: REGION,
        AWS_DEFAULT_REGION: REGION,
        // Where this machine's services answer instead of AWS's.
        AWS_ENDPOINT_URL: moto.endpoint,
        AWS_ENDPOINT_URL_LAMBDA: lambdaEndpoint,
        // The builder uses this machine's uv instead of pip-installing one into /tmp on each cold start.
        ...(fn.name === builderName && { UV_PATH: options.uv }),
      }),
      persistentTmp: (fn) => (fn.name === builderName ? join(options.cacheDir, "builder-tmp") : undefined),
      marks: { pluginReady: PLUGIN_READY },
      onEvent: options.onRunnerEvent,
    });
    cleanups.push(() => runner.stop());
    const lambda = await LambdaService.start({ runner, recordCalls: false, onAsyncFailure: options.onAsyncFailure });
    lambdaEndpoint = lambda.endpoint;
    cleanups.push(() => lambda.close());

    const keys = secretRoles(stack);
    const deployment = await deployStack(
      stack,
      { dynamodb, s3, secrets, lambda },
      {
        secretValue: (id) =>
          id === keys.daemonKey ? options.daemonKey : id === keys.innerApiKey ? options.innerApiKey : undefined,
      },
    );
    for (const [arn, dir] of deployment.layers) layers.set(arn, dir);
    const management = managementEnvironment(lambda, deployment);
    builderName = management.PLUGIN_BUILDER_FUNCTION;

    const apiId = [...deployment.physical.entries()].find(
      ([id]) => stack.resources[id]?.Type === "AWS::ApiGateway::RestApi",
    )![1].ref;
    const gateway: LocalApiGateway = await startApiGateway({
      model: deployment.api,
      apiId,
      lambdaEndpoint: lambda.endpoint,
      host: options.host,
      port,
      ...(options.streamIdleMs !== undefined && { limits: { streamIdleMs: options.streamIdleMs } }),
      onAccess: options.onAccess,
    });
    cleanups.push(() => gateway.close());
    const schedules: RunningSchedules = startSchedules(deployment.schedules, (name, event) =>
      lambda.invokeAsync(name, event),
    );
    cleanups.push(async () => schedules.stop());

    const daemonKeySecretArn = management.DAEMON_KEY_SECRET_ARN ?? "";
    const innerApiKeySecretArn = management.DIFY_INNER_API_KEY_SECRET_ARN ?? "";
    const outputs: CompositionOutputs = {
      PluginDaemonUrl: gateway.url,
      daemonKey: deployment.secretValues.get(daemonKeySecretArn) ?? "",
      innerApiKey: deployment.secretValues.get(innerApiKeySecretArn) ?? "",
      daemonKeySecretArn,
      innerApiKeySecretArn,
      awsEndpoint: moto.endpoint,
      lambdaEndpoint: lambda.endpoint,
      environmentsUrl: `${lambda.endpoint}/aws-local/environments`,
      tableName: management.METADATA_TABLE ?? "",
      bucketName: management.PACKAGE_BUCKET ?? "",
      functions: Object.fromEntries(deployment.functions),
      stackName: stack.stackName,
      pluginArch: stack.settings.pluginArch,
    };
    return { outputs, stack, deployment, skippedSchedules: schedules.skipped, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Which secrets hold the daemon key and the inner-API key: those the handlers' variables name. */
function secretRoles(stack: SynthesizedStack): { daemonKey?: string; innerApiKey?: string } {
  const refOf = (name: DaemonEnvName) => {
    for (const resource of Object.values(stack.resources)) {
      if (resource.Type !== "AWS::Lambda::Function") continue;
      const variables = (resource.Properties?.Environment as { Variables?: Record<string, unknown> } | undefined)
        ?.Variables;
      const ref = (variables?.[name] as { Ref?: string } | undefined)?.Ref;
      if (ref) return ref;
    }
    return undefined;
  };
  return { daemonKey: refOf("DAEMON_KEY_SECRET_ARN"), innerApiKey: refOf("DIFY_INNER_API_KEY_SECRET_ARN") };
}

/** The resolved environment of the management handler: the one function the stack gives both the builder and the install worker. */
function managementEnvironment(lambda: LambdaService, deployment: Deployment): DaemonEnvironment {
  for (const name of deployment.functions.values()) {
    const variables = lambda.functions.get(name)?.configuration.Environment?.Variables;
    if (variables?.PLUGIN_BUILDER_FUNCTION && variables.INSTALL_WORKER_FUNCTION) return variables;
  }
  throw new Error(
    "the stack has no management handler (a function given PLUGIN_BUILDER_FUNCTION and INSTALL_WORKER_FUNCTION)",
  );
}
