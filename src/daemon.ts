/**
 * The composition root: builds the daemon's services on the adapters the configuration asks
 * for (AWS or local). Lambda handlers and the local daemon share one instance per process.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { HttpDifyInnerApi } from "./adapters/http-dify-inner-api.js";
import { HttpMarketplace } from "./adapters/http-marketplace.js";
import { type DaemonConfig, loadConfig } from "./config.js";
import { daemonKeySource } from "./daemon-key.js";
import type { DaemonKeySource } from "./http/pipeline.js";
import { setLogLevel } from "./logger.js";
import type { BlobStore } from "./ports/blob-store.js";
import type { DifyInnerApi } from "./ports/dify-inner-api.js";
import type { InstallQueue } from "./ports/install-queue.js";
import type { ItemStore } from "./ports/item-store.js";
import type { PluginRuntime } from "./ports/plugin-runtime.js";
import type { GroupDeps } from "./routes/group-runtime.js";
import type { AutoUpgrade } from "./services/auto-upgrade.js";
import { BackwardsInvocations } from "./services/backwards-invocation.js";
import { BundleIntake } from "./services/bundle-intake.js";
import { Catalog } from "./services/catalog.js";
import { Dispatcher } from "./services/dispatcher.js";
import { EndpointInvoker } from "./services/endpoint-invoker.js";
import { EndpointManager } from "./services/endpoint-manager.js";
import { EndpointSettingsVault } from "./services/endpoint-settings-vault.js";
import { Installer } from "./services/installer.js";
import { MarketplacePrefetch } from "./services/marketplace-prefetch.js";
import { PackageIntake } from "./services/package-intake.js";
import { Readmes } from "./services/readmes.js";
import { RemotePlugins } from "./services/remote-plugins.js";
import { registeringSessions } from "./services/session-registry.js";
import { TaskCleanup } from "./services/task-cleanup.js";
import { DebuggingKeys } from "./stores/debugging-keys.js";
import { Endpoints } from "./stores/endpoints.js";
import { InstallTasks } from "./stores/install-tasks.js";
import type { Installation } from "./stores/installations.js";
import { Installations } from "./stores/installations.js";
import { PackageRecords } from "./stores/package-records.js";
import { PluginSessions } from "./stores/plugin-sessions.js";
import { PluginStorage } from "./stores/plugin-storage.js";
import { RuntimeClaims } from "./stores/runtime-claims.js";
import { SnapshotCache, UpgradeRecords, UpgradeStrategies } from "./stores/upgrade-strategies.js";

/**
 * The daemon as its entry points see it (the Lambda handlers, the local daemon, the scripts):
 * what they run themselves, and each route group's dependencies, wired here once.
 */
export interface Daemon {
  config: DaemonConfig;
  /** The key callers present as X-Api-Key (src/daemon-key.ts). */
  daemonKey: DaemonKeySource;
  /** The local daemon recovers it on start and connects remote-debugging plugins to it. */
  runtime: PluginRuntime;
  /** The install worker runs its tasks; the local daemon fails those a previous run left unfinished. */
  installer: Installer;
  /** Plugins connected over the remote-debugging port, as installations (local daemon only). */
  remotePlugins: RemotePlugins;
  /** Run by the upgrade-check handler, the local daemon's timer and scripts/auto-upgrade.ts. */
  autoUpgrade: Pick<AutoUpgrade, "runCycle" | "checkNow" | "status">;
  /** What each route group's routes are built from (src/routes/group-runtime.ts). */
  groups: GroupDeps;
  close(): Promise<void>;
}

/** The adapters a deployment provides. */
export interface Adapters {
  items: ItemStore;
  blobs: BlobStore;
  runtime: PluginRuntime;
  runtimeType: Installation["runtime_type"];
  daemonKey: DaemonKeySource;
  /** Built with the installer, because the local queue runs tasks in-process. */
  queue: (runTask: (tenantId: string, taskId: string) => Promise<void>) => InstallQueue;
}

/** A removal of a shared runtime (draining its calls, deleting a function) that takes longer than this died. */
const REMOVAL_LEASE_MS = 10 * 60_000;

export function createDaemon(config: DaemonConfig, adapters: Adapters): Daemon {
  const core = coreServices(config, adapters);
  const { installer, autoUpgrade } = core;
  return {
    config,
    daemonKey: adapters.daemonKey,
    runtime: adapters.runtime,
    installer,
    remotePlugins: core.remotePlugins,
    autoUpgrade: {
      runCycle: async (input) => (await autoUpgrade()).runCycle(input),
      checkNow: async (tenantId) => (await autoUpgrade()).checkNow(tenantId),
      status: async (tenantId) => (await autoUpgrade()).status(tenantId),
    },
    groups: groupDeps(config, adapters, core),
    close: () => adapters.runtime.close(),
  };
}

type CoreServices = ReturnType<typeof coreServices>;

/** The services more than one group or entry point shares. */
function coreServices(config: DaemonConfig, adapters: Adapters) {
  const installTimeoutMs = config.installTimeoutMinutes * 60_000;
  const packages = new PackageRecords(adapters.items, adapters.blobs);
  const intake = new PackageIntake(packages, {
    limits: config.packageLimits,
    forceVerifyingSignature: config.forceVerifyingSignature,
    extraPublicKeysPem: config.thirdPartyPublicKeyPaths.map((path) => readFileSync(path, "utf8")),
  });
  const installations = new Installations(adapters.items);
  const tasks = new InstallTasks(adapters.items);
  let installer: Installer | undefined;
  const marketplace = new HttpMarketplace(marketplaceSettings(config));
  const queue = adapters.queue((tenantId, taskId) => (installer as Installer).runTask(tenantId, taskId));
  installer = new Installer({
    packages,
    intake,
    installations,
    tasks,
    runtime: adapters.runtime,
    marketplace,
    queue,
    runtimeType: adapters.runtimeType,
    claims: new RuntimeClaims(adapters.items, { installLeaseMs: installTimeoutMs, removalLeaseMs: REMOVAL_LEASE_MS }),
    installTimeoutMs,
  });
  const difyInnerApi = innerApi(config);
  const pluginSessions = new PluginSessions(adapters.items);
  const backwards = new BackwardsInvocations({
    inner: difyInnerApi,
    storage: new PluginStorage(adapters.items, adapters.blobs),
    packages,
    defaultStorageBytes: config.pluginStorageMaxBytes,
  });
  // Lambda plugins call back over HTTP, possibly to another instance: their sessions are registered.
  const sessionRuntime =
    adapters.runtimeType === "serverless" ? registeringSessions(adapters.runtime, pluginSessions) : adapters.runtime;
  const dispatcher = new Dispatcher(sessionRuntime, config.executionTimeoutSeconds, backwards.factory);
  const upgradeStrategies = new UpgradeStrategies(adapters.items);
  const debuggingKeys = new DebuggingKeys(adapters.items);
  // Built on first use: only the management and upgrade-check handlers run auto-upgrade, and its
  // version rules bring in semver.
  const autoUpgrade = once(async () => {
    const { AutoUpgrade, installerUpgrades } = await import("./services/auto-upgrade.js");
    return new AutoUpgrade({
      strategies: upgradeStrategies,
      records: new UpgradeRecords(adapters.items),
      snapshots: new SnapshotCache(adapters.items, config.marketplaceUrl),
      installations,
      tasks,
      marketplace,
      upgrades: installerUpgrades(installer, marketplace),
      options: {
        snapshotCacheSeconds: config.autoUpgrade.snapshotCacheSeconds,
        leaseSeconds: config.autoUpgrade.leaseSeconds,
      },
    });
  });
  return {
    packages,
    intake,
    installations,
    tasks,
    installer,
    difyInnerApi,
    pluginSessions,
    backwards,
    dispatcher,
    upgradeStrategies,
    debuggingKeys,
    autoUpgrade,
    remotePlugins: new RemotePlugins({ installations, packages, debuggingKeys }),
  };
}

/** Each route group's dependencies: the one place routes are wired. */
function groupDeps(config: DaemonConfig, adapters: Adapters, core: CoreServices): GroupDeps {
  const { packages, intake, installations, dispatcher, autoUpgrade } = core;
  const endpointStore = new Endpoints(adapters.items);
  const vault = new EndpointSettingsVault(core.difyInnerApi);
  const { idleMs } = config.streamKeepAlive;
  return {
    management: {
      platform: config.storeBackend === "aws" ? "serverless" : "local",
      intake,
      bundles: new BundleIntake(intake, {
        limits: {
          ...config.packageLimits,
          maxPackageBytes: config.maxBundleBytes,
          maxUncompressedBytes: config.maxBundleBytes,
        },
        enforceLanggeniusSignatures: config.enforceLanggeniusSignatures,
      }),
      prefetch: new MarketplacePrefetch({
        enabled: config.fetchMissingMarketplacePackages,
        // The management handler must answer within API Gateway's 29 s: a download may take most of it.
        marketplace: new HttpMarketplace({ ...marketplaceSettings(config), timeoutMs: 20_000 }),
        intake,
        packages,
      }),
      readmes: new Readmes(intake),
      catalog: new Catalog(installations, packages),
      uploadLimits: { maxPackageBytes: config.packageLimits.maxPackageBytes, maxBundleBytes: config.maxBundleBytes },
      installer: core.installer,
      taskCleanup: new TaskCleanup(core.tasks),
      endpoints: new EndpointManager(endpointStore, installations, packages, vault),
      autoUpgrade: {
        checkNow: async (tenantId) => (await autoUpgrade()).checkNow(tenantId),
        status: async (tenantId) => (await autoUpgrade()).status(tenantId),
      },
      upgradeStrategies: core.upgradeStrategies,
      packages,
      debuggingKeys: config.remoteInstallingEnabled ? core.debuggingKeys : undefined,
    },
    dispatch: { dispatcher, installations, packages, intake, keepAlive: config.streamKeepAlive },
    "public-endpoint": {
      invoker: new EndpointInvoker(endpointStore, installations, packages, vault, dispatcher),
      enabled: config.endpointsEnabled,
    },
    "backwards-invocation": {
      sessions: core.pluginSessions,
      backwards: core.backwards,
      // Callback tokens are signed with the daemon key, as the Lambda runtime signs them.
      callbackSecret: adapters.daemonKey,
      // Dify's answer to a backwards call has no first-token timeout to keep: blank lines from the start.
      keepAlive: { idleMs, firstChunkWaitMs: idleMs },
    },
  };
}

const marketplaceSettings = (config: DaemonConfig) => ({
  marketplaceUrl: config.marketplaceUrl,
  githubUrl: config.githubUrl,
  maxPackageBytes: config.packageLimits.maxPackageBytes,
});

/** Runs `build` on the first call; later calls share its result. */
function once<T>(build: () => Promise<T>): () => Promise<T> {
  let built: Promise<T> | undefined;
  return () => (built ??= build());
}

function innerApi(config: DaemonConfig): DifyInnerApi | undefined {
  const { difyInnerApiUrl: baseUrl, difyInnerApiKey: key, difyInnerApiKeySecretArn: arn } = config;
  if (!baseUrl) return undefined;
  return new HttpDifyInnerApi({
    baseUrl,
    key: arn ? async () => (await import("./adapters/aws/secrets.js")).secretValue(arn) : async () => key ?? "",
    timeoutMs: config.difyInnerApiTimeoutMs,
  });
}

export async function localAdapters(config: DaemonConfig): Promise<Adapters> {
  const [{ SqliteItemStore }, { DiskBlobStore }, { LocalPluginRuntime }, { InProcessInstallQueue }] = await Promise.all(
    [
      import("./adapters/local/sqlite-item-store.js"),
      import("./adapters/local/disk-blob-store.js"),
      import("./adapters/local/local-plugin-runtime.js"),
      import("./adapters/local/in-process-install-queue.js"),
    ],
  );
  return {
    items: SqliteItemStore.inDirectory(config.dataDir),
    blobs: new DiskBlobStore(join(config.dataDir, "blobs")),
    runtime: new LocalPluginRuntime({
      workDir: join(config.dataDir, "plugins"),
      pythonPath: config.pythonInterpreterPath,
      uvPath: config.uvPath,
      pipMirrorUrl: config.pipMirrorUrl,
      envInitTimeoutSeconds: config.pythonEnvInitTimeoutSeconds,
      memoryFloorBytes: config.pluginMemoryFloorBytes,
      heartbeatTimeoutMs: config.pluginHeartbeatTimeoutSeconds * 1000,
      drainTimeoutMs: config.pluginDrainTimeoutSeconds * 1000,
      idleTimeoutMs: config.pluginIdleTimeoutSeconds * 1000,
      keepWarm: config.pluginKeepWarm,
      launchingConcurrency: config.pluginLaunchingConcurrency,
    }),
    runtimeType: "local",
    daemonKey: daemonKeySource(config),
    queue: (run) => new InProcessInstallQueue(run),
  };
}

async function awsAdapters(config: DaemonConfig): Promise<Adapters> {
  const [{ DynamoDbItemStore }, { S3BlobStore }, { LambdaPluginRuntime }, { LambdaInstallQueue }] = await Promise.all([
    import("./adapters/aws/dynamodb-item-store.js"),
    import("./adapters/aws/s3-blob-store.js"),
    import("./adapters/aws/lambda-plugin-runtime.js"),
    import("./adapters/aws/lambda-install-queue.js"),
  ]);
  const required = (value: string | undefined, name: string): string => {
    if (!value) throw new Error(`${name} must be set when STORE_BACKEND=aws`);
    return value;
  };
  const table = required(config.metadataTable, "METADATA_TABLE");
  const bucket = required(config.packageBucket, "PACKAGE_BUCKET");
  const items = new DynamoDbItemStore({ tableName: table });
  const daemonKey = daemonKeySource(config);
  return {
    items,
    blobs: new S3BlobStore({ bucket }),
    runtime: new LambdaPluginRuntime({ config, bucket, items, callbackSecret: daemonKey }),
    runtimeType: "serverless",
    daemonKey,
    queue: (run) => new LambdaInstallQueue(config.installWorkerFunction, run),
  };
}

let shared: Promise<Daemon> | undefined;

/** The process-wide daemon, built from the environment on first use. */
export function sharedDaemon(): Promise<Daemon> {
  shared ??= (async () => {
    const config = loadConfig();
    setLogLevel(config.logLevel);
    const adapters = config.storeBackend === "aws" ? await awsAdapters(config) : await localAdapters(config);
    return createDaemon(config, adapters);
  })();
  return shared;
}
