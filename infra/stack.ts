/**
 * The serverless Dify plugin daemon: API Gateway → handler functions, packages in S3, state in
 * one DynamoDB table, one Python Lambda per plugin, and a 15-minute upgrade check.
 *
 * Permissions are granted here, in one place, per handler and per resource it touches.
 */
import { CfnOutput, Duration, Stack, type StackProps } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import * as logs from "aws-cdk-lib/aws-logs";
import type { Construct } from "constructs";
import { Api } from "./constructs/api.js";
import { DaemonKey } from "./constructs/daemon-key.js";
import { DifyInnerApi } from "./constructs/dify-inner-api.js";
import { Handlers } from "./constructs/handlers.js";
import { MetadataTable } from "./constructs/metadata-table.js";
import { Observability, observabilityContext } from "./constructs/observability.js";
import { PACKAGE_BUCKET_PREFIXES, PackageBucket } from "./constructs/package-bucket.js";
import { PluginRuntime } from "./constructs/plugin-runtime.js";
import { UpgradeSchedule } from "./constructs/upgrade-schedule.js";
import { allowNetworkInterfaces, allowVpcConfiguration, placeInVpc } from "./constructs/vpc-placement.js";
import { addDaemonEnvironment } from "./daemon-environment.js";
import { allowGranteeWildcards } from "./nag.js";
import type { PluginDaemonSettings } from "./settings.js";

export interface PluginDaemonStackProps extends StackProps {
  readonly settings: PluginDaemonSettings;
  /** Directory holding the handler bundles (`<name>/index.mjs`). */
  readonly bundleDir: string;
  /** Directory with build-layer.sh, plugin-runtime/ and plugin-builder/. */
  readonly layersDir: string;
}

/** The handlers that call Dify's inner API: endpoint settings (management, public-endpoint) and backwards invocation. */
export const DIFY_CALLERS = ["management", "public-endpoint", "backwards-invocation"] as const;

/** Margin between the plugin execution timeout and the function/integration timeout, so a handler can still report "killed by timeout". */
const STREAM_SHUTDOWN_MARGIN = Duration.seconds(30);

const RETENTION_DAYS = new Set<number>(
  Object.values(logs.RetentionDays).filter((v): v is number => typeof v === "number"),
);

export class PluginDaemonStack extends Stack {
  readonly api: Api;
  readonly handlers: Handlers;
  readonly table: MetadataTable;
  readonly packages: PackageBucket;
  readonly pluginRuntime: PluginRuntime;
  readonly daemonKey: DaemonKey;
  readonly difyInnerApi: DifyInnerApi;
  readonly upgradeSchedule: UpgradeSchedule;
  readonly observability: Observability;

  constructor(scope: Construct, id: string, props: PluginDaemonStackProps) {
    super(scope, id, { description: "Dify plugin daemon (serverless)", ...props });
    const s = props.settings;
    if (!RETENTION_DAYS.has(s.logRetentionDays)) {
      throw new Error(`logRetentionDays must be one of ${[...RETENTION_DAYS].join(", ")}, got ${s.logRetentionDays}`);
    }
    const logRetention = s.logRetentionDays as logs.RetentionDays;
    const streamTimeout = Duration.seconds(s.pluginMaxExecutionTimeout + STREAM_SHUTDOWN_MARGIN.toSeconds());

    this.table = new MetadataTable(this, "MetadataTable");
    this.packages = new PackageBucket(this, "PackageBucket");
    this.daemonKey = new DaemonKey(this, "DaemonKey");
    this.difyInnerApi = new DifyInnerApi(this, "DifyInnerApi", {
      url: s.difyInnerApiUrl,
      apiKeySecretArn: s.difyInnerApiKeySecretArn,
    });
    this.pluginRuntime = new PluginRuntime(this, "PluginRuntime", {
      layersDir: props.layersDir,
      functionPrefix: s.pluginFunctionPrefix,
      arch: s.pluginArch,
      packageBucket: this.packages,
      layerBuild: s.pluginLayerBuild,
      logRetention,
    });

    this.handlers = new Handlers(this, "Handlers", {
      bundleDir: props.bundleDir,
      streamTimeout,
      logRetention,
      reservedConcurrency: s.reservedConcurrency,
      environment: {
        STORE_BACKEND: "aws",
        METADATA_TABLE: this.table.tableName,
        PACKAGE_BUCKET: this.packages.bucketName,
        DAEMON_KEY_SECRET_ARN: this.daemonKey.secretArn,
        // Unset unless configured (daemonEnvironment leaves undefined values out).
        DIFY_INNER_API_URL: s.difyInnerApiUrl,
        DIFY_INNER_API_KEY_SECRET_ARN: this.difyInnerApi.apiKeySecret.secretArn,
        PLUGIN_FUNCTION_PREFIX: s.pluginFunctionPrefix,
        PLUGIN_ROLE_ARN: this.pluginRuntime.pluginRole.roleArn,
        PLUGIN_LAYER_ARN: this.pluginRuntime.layer.layerVersionArn,
        MARKETPLACE_API_URL: s.marketplaceApiUrl,
        FORCE_VERIFYING_SIGNATURE: String(s.forceVerifyingSignature),
        MAX_PLUGIN_PACKAGE_SIZE: String(s.maxPluginPackageSize),
        PLUGIN_MAX_EXECUTION_TIMEOUT: String(s.pluginMaxExecutionTimeout),
        PLUGIN_ARCH: s.pluginArch,
        // Counted against each plugin function's 250 MB unzipped quota before it is created.
        PLUGIN_LAYER_BYTES: String(this.pluginRuntime.layerUnzippedBytes),
        PLUGIN_MIN_MEMORY_MB: String(s.pluginMinMemoryMb),
        AUTO_UPGRADE_ENABLED: String(s.autoUpgrade),
        // fetch/manifest downloads marketplace packages itself, so Dify never uploads them through
        // API Gateway (src/adapters/aws/marketplace-prefetch.ts).
        FETCH_MISSING_MARKETPLACE_PACKAGES: "true",
        LOG_LEVEL: s.logLevel,
      },
    });
    const fn = this.handlers.functions;

    this.api = new Api(this, "Api", {
      stageName: s.stageName,
      streamTimeout,
      throttlingRateLimit: s.throttlingRateLimit,
      throttlingBurstLimit: s.throttlingBurstLimit,
      logRetention,
      targets: fn,
    });
    // Plugin functions call back into /backwards-invocation/transaction through this URL.
    const daemonPublicUrl = s.daemonPublicUrl ? this.api.urlFromTemplate(s.daemonPublicUrl) : this.api.url;
    this.handlers.addEnvironment({ DAEMON_PUBLIC_URL: daemonPublicUrl });
    // Only on the functions that call them: a function naming itself would be a dependency cycle.
    addDaemonEnvironment([fn.management, fn["install-worker"]], {
      PLUGIN_BUILDER_FUNCTION: this.pluginRuntime.builder.functionName,
    });
    addDaemonEnvironment([fn.management, fn["upgrade-check"]], {
      INSTALL_WORKER_FUNCTION: fn["install-worker"].functionName,
    });

    this.upgradeSchedule = new UpgradeSchedule(this, "UpgradeSchedule", {
      upgradeCheck: fn["upgrade-check"],
      enabled: s.autoUpgrade,
    });

    // A Dify reachable only inside a VPC: the handlers that call its inner API run there.
    if (s.handlerVpc) for (const name of DIFY_CALLERS) placeInVpc(fn[name], s.handlerVpc);
    if (s.pluginVpc) {
      allowNetworkInterfaces(this, this.pluginRuntime.pluginRole);
      for (const creator of ["management", "install-worker"] as const) {
        addDaemonEnvironment([fn[creator]], {
          PLUGIN_SUBNET_IDS: s.pluginVpc.subnetIds.join(","),
          PLUGIN_SECURITY_GROUP_IDS: s.pluginVpc.securityGroupIds.join(","),
        });
        allowVpcConfiguration(
          this,
          `${creator === "management" ? "Management" : "InstallWorker"}PluginVpcConfiguration`,
          fn[creator],
        );
      }
    }

    this.grantHandlerPermissions();
    this.observability = new Observability(this, "Observability", {
      handlers: fn,
      restApi: this.api.restApi,
      stageName: this.api.stageName,
      table: this.table.table,
      pluginRole: this.pluginRuntime.pluginRole,
      ...observabilityContext(this),
    });
    this.addOutputs(daemonPublicUrl);
  }

  /** What each handler touches, and nothing else. */
  private grantHandlerPermissions(): void {
    const fn = this.handlers.functions;
    const { packages, assets, pluginCode, pluginStorage } = PACKAGE_BUCKET_PREFIXES;

    // management: uploads/decodes packages, serves assets, manages endpoints (encrypted through
    // Dify's inner API), uninstalls plugin functions, starts install tasks.
    this.table.grantReadWriteData(fn.management);
    this.packages.grantObjects(fn.management, { prefixes: [packages, assets], read: true, write: true, delete: true });
    this.daemonKey.grantRead(fn.management);
    this.difyInnerApi.grantReadApiKey(fn.management);
    this.pluginRuntime.grantRuntimeManagement(fn.management);
    this.pluginRuntime.grantInvokeBuilder(fn.management);
    fn["install-worker"].grantInvoke(fn.management);

    // The daemon key also signs (dispatch, public-endpoint) and verifies (backwards-invocation)
    // the session callback tokens plugin functions present when they call back.

    // dispatch: resolves the installation, records the session for backwards invocation, streams
    // the plugin function's answer; serves assets (assets/) and files of stored packages (packages/).
    this.table.grantReadWriteData(fn.dispatch);
    this.packages.grantObjects(fn.dispatch, { prefixes: [packages, assets], read: true });
    this.daemonKey.grantRead(fn.dispatch);
    this.pluginRuntime.grantInvokePlugins(fn.dispatch);

    // public-endpoint: resolves the hook, decrypts the endpoint settings through Dify, invokes the plugin.
    this.table.grantReadWriteData(fn["public-endpoint"]);
    this.daemonKey.grantRead(fn["public-endpoint"]);
    this.difyInnerApi.grantReadApiKey(fn["public-endpoint"]);
    this.pluginRuntime.grantInvokePlugins(fn["public-endpoint"]);

    // backwards-invocation: looks up the session and calls Dify's inner API; plugin storage
    // lives in the table, values over 64 KiB under plugin-storage/ in the bucket.
    this.table.grantReadWriteData(fn["backwards-invocation"]);
    this.packages.grantObjects(fn["backwards-invocation"], {
      prefixes: [pluginStorage],
      read: true,
      write: true,
      delete: true,
    });
    this.daemonKey.grantRead(fn["backwards-invocation"]);
    this.difyInnerApi.grantReadApiKey(fn["backwards-invocation"]);

    // install-worker: reads the package, has the builder produce the code zip, creates or updates
    // the plugin function from it (CreateFunction reads the zip with the caller's permissions).
    this.table.grantReadWriteData(fn["install-worker"]);
    this.packages.grantObjects(fn["install-worker"], { prefixes: [packages, assets], read: true, write: true });
    this.packages.grantObjects(fn["install-worker"], { prefixes: [pluginCode], read: true, delete: true });
    this.pluginRuntime.grantRuntimeManagement(fn["install-worker"]);
    this.pluginRuntime.grantInvokeBuilder(fn["install-worker"]);

    // upgrade-check: reads the tenants of the current slot through gsi1, downloads new packages
    // from the marketplace, starts install tasks, and hands a long run on to a new invocation of
    // itself. That last grant is a separate policy: the function waits for its default policy, so
    // naming the function there would be a dependency cycle.
    this.table.grantReadWriteData(fn["upgrade-check"]);
    this.packages.grantObjects(fn["upgrade-check"], { prefixes: [packages, assets], read: true, write: true });
    fn["install-worker"].grantInvoke(fn["upgrade-check"]);
    new iam.Policy(this, "UpgradeCheckContinuation", {
      roles: [fn["upgrade-check"].role!],
      statements: [
        new iam.PolicyStatement({ actions: ["lambda:InvokeFunction"], resources: [fn["upgrade-check"].functionArn] }),
      ],
    });

    // grantInvoke also allows the worker's versions and aliases (<arn>:*).
    for (const caller of [fn.management, fn["upgrade-check"]]) {
      allowGranteeWildcards(caller, {
        finding: /^Resource::<HandlersInstallWorker[A-Za-z0-9]+\.Arn>:\*$/,
        reason:
          "Invoking the install worker by qualified ARN (a version or alias of that one function) is the same permission.",
      });
    }
  }

  private addOutputs(daemonPublicUrl: string): void {
    const keyCommand =
      `aws secretsmanager get-secret-value --region ${this.region} --secret-id ${this.daemonKey.secretArn} ` +
      "--query SecretString --output text";
    new CfnOutput(this, "PluginDaemonUrl", {
      description: "Dify: PLUGIN_DAEMON_URL",
      value: this.api.url,
    });
    new CfnOutput(this, "PluginDaemonKeyCommand", {
      description: "Prints the daemon key. Dify: PLUGIN_DAEMON_KEY",
      value: keyCommand,
    });
    const innerKey = this.difyInnerApi.apiKeyGenerated
      ? `INNER_API_KEY_FOR_PLUGIN=<aws secretsmanager get-secret-value --region ${this.region} --secret-id ${this.difyInnerApi.apiKeySecret.secretArn} --query SecretString --output text>`
      : `INNER_API_KEY_FOR_PLUGIN=<the value of ${this.difyInnerApi.apiKeySecret.secretArn}>`;
    new CfnOutput(this, "DifySettings", {
      description: "Settings for Dify's API server (docs/deploy.md)",
      value: [
        `PLUGIN_DAEMON_URL=${this.api.url}`,
        "PLUGIN_DAEMON_KEY=<PluginDaemonKeyCommand output>",
        innerKey,
        `ENDPOINT_URL_TEMPLATE=${this.api.url}/e/{hook_id}`,
        `daemon calls Dify at ${this.difyInnerApi.url ?? "<unset: deploy with -c difyInnerApiUrl=https://your-dify-api>"}`,
        `plugins call back ${daemonPublicUrl}`,
      ].join(" ; "),
    });
  }
}
