/**
 * The migration's writer: our own stores (packages, installations, endpoints, plugin storage)
 * on the deployment's adapters, local (SQLite + directory under DATA_DIR) or AWS (METADATA_TABLE
 * + PACKAGE_BUCKET). Everything goes through the same repositories the daemon uses, so migrated
 * records are exactly what an install through the API would have written.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { DaemonConfig } from "../config.js";
import type { PluginUniqueIdentifier } from "../domain/identifier.js";
import type { PluginDeclaration } from "../domain/manifest.js";
import type { BlobStore } from "../ports/blob-store.js";
import type { ItemStore } from "../ports/item-store.js";
import type { PluginRuntime } from "../ports/plugin-runtime.js";
import { PackageIntake, type PreparedPackage } from "../services/package-intake.js";
import { type Endpoint, Endpoints } from "../stores/endpoints.js";
import { type Installation, Installations } from "../stores/installations.js";
import { PackageRecords } from "../stores/package-records.js";
import { PluginStorage } from "../stores/plugin-storage.js";

export interface MigrationTarget {
  readonly description: string;
  readonly runtimeType: Installation["runtime_type"];
  hasPackage(uid: PluginUniqueIdentifier): Promise<boolean>;
  /** Decodes and checks a package (identifier = declaration + checksum of its files); writes nothing. */
  checkPackage(bytes: Uint8Array, uid: PluginUniqueIdentifier): Promise<PreparedPackage>;
  savePackage(prepared: PreparedPackage): Promise<void>;
  declaration(uid: PluginUniqueIdentifier): Promise<PluginDeclaration | undefined>;
  installation(tenantId: string, pluginId: string): Promise<Installation | undefined>;
  createInstallation(installation: Installation): Promise<boolean>;
  endpoint(tenantId: string, endpointId: string): Promise<Endpoint | undefined>;
  endpointByHook(hookId: string): Promise<Endpoint | undefined>;
  /** Also counts the endpoint on its installation; false when the plugin is not installed. */
  createEndpoint(endpoint: Endpoint): Promise<boolean>;
  hasStorageKey(tenantId: string, pluginId: string, key: string): Promise<boolean>;
  setStorageKey(tenantId: string, pluginId: string, key: string, value: Uint8Array): Promise<void>;
  runtimeReady(uid: PluginUniqueIdentifier): Promise<boolean>;
  prepareRuntime(uid: PluginUniqueIdentifier, progress: (line: string) => void): Promise<void>;
  close(): Promise<void>;
}

interface TargetParts {
  description: string;
  items: ItemStore;
  blobs: BlobStore;
  runtimeType: Installation["runtime_type"];
  /** Built on first use: only --prepare and readiness checks need it. Undefined: no runtime was ever prepared here. */
  runtime: (() => Promise<PluginRuntime>) | undefined;
  close: () => Promise<void>;
}

/** The Go daemon already accepted these packages, so unsigned ones are carried too; the signature is still checked and recorded. */
class StoreTarget implements MigrationTarget {
  readonly description: string;
  readonly runtimeType: Installation["runtime_type"];
  private readonly packages: PackageRecords;
  private readonly intake: PackageIntake;
  private readonly installations: Installations;
  private readonly endpoints: Endpoints;
  private readonly storage: PluginStorage;
  private runtimeInstance: Promise<PluginRuntime> | undefined;

  constructor(
    private readonly parts: TargetParts,
    config: DaemonConfig,
  ) {
    this.description = parts.description;
    this.runtimeType = parts.runtimeType;
    this.packages = new PackageRecords(parts.items, parts.blobs);
    this.intake = new PackageIntake(this.packages, {
      limits: config.packageLimits,
      forceVerifyingSignature: false,
      extraPublicKeysPem: config.thirdPartyPublicKeyPaths.map((path) => readFileSync(path, "utf8")),
    });
    this.installations = new Installations(parts.items);
    this.endpoints = new Endpoints(parts.items);
    this.storage = new PluginStorage(parts.items, parts.blobs);
  }

  async hasPackage(uid: PluginUniqueIdentifier) {
    return (await this.packages.get(uid)) !== undefined;
  }
  checkPackage(bytes: Uint8Array, uid: PluginUniqueIdentifier) {
    return this.intake.prepare(bytes, false, uid);
  }
  savePackage(prepared: PreparedPackage) {
    return this.intake.persist(prepared);
  }
  async declaration(uid: PluginUniqueIdentifier) {
    return (await this.packages.get(uid))?.declaration;
  }
  async installation(tenantId: string, pluginId: string) {
    return (await this.installations.get(tenantId, pluginId))?.installation;
  }
  createInstallation(installation: Installation) {
    return this.installations.create(installation);
  }
  async endpoint(tenantId: string, endpointId: string) {
    return (await this.endpoints.get(tenantId, endpointId))?.endpoint;
  }
  endpointByHook(hookId: string) {
    return this.endpoints.findByHook(hookId);
  }
  createEndpoint(endpoint: Endpoint) {
    return this.endpoints.create(endpoint);
  }
  hasStorageKey(tenantId: string, pluginId: string, key: string) {
    return this.storage.exists(tenantId, pluginId, key);
  }
  setStorageKey(tenantId: string, pluginId: string, key: string, value: Uint8Array) {
    // Upstream already held the value within its cap; the cap applies again to the plugin's next writes.
    return this.storage.set(tenantId, pluginId, key, value, Number.MAX_SAFE_INTEGER);
  }
  async runtimeReady(uid: PluginUniqueIdentifier) {
    return this.parts.runtime ? (await this.runtime()).isInstalled(uid) : false;
  }
  async prepareRuntime(uid: PluginUniqueIdentifier, progress: (line: string) => void) {
    const record = await this.packages.get(uid);
    if (!record) throw new Error(`package ${uid} is not stored`);
    const archive = () => this.intake.archiveOf(uid);
    await (await this.runtime()).install({ uniqueIdentifier: uid, declaration: record.declaration, archive }, progress);
  }
  async close() {
    if (this.runtimeInstance) await (await this.runtimeInstance).close();
    await this.parts.close();
  }

  private runtime(): Promise<PluginRuntime> {
    const build = this.parts.runtime;
    if (!build) throw new Error("no plugin runtime in a dry run");
    this.runtimeInstance ??= build();
    return this.runtimeInstance;
  }
}

/** `dryRun`: a local data directory that does not exist yet is not created. */
export async function openTarget(config: DaemonConfig, options: { dryRun: boolean }): Promise<MigrationTarget> {
  const parts = config.storeBackend === "aws" ? await awsParts(config) : await localParts(config, options.dryRun);
  return new StoreTarget(parts, config);
}

async function localParts(config: DaemonConfig, dryRun: boolean): Promise<TargetParts> {
  if (dryRun && !existsSync(join(config.dataDir, "metadata.sqlite"))) {
    // Nothing is there yet: an empty throwaway store answers every "already there?" with no.
    const [{ SqliteItemStore }, { DiskBlobStore }] = await Promise.all([
      import("../adapters/local/sqlite-item-store.js"),
      import("../adapters/local/disk-blob-store.js"),
    ]);
    const items = new SqliteItemStore({ filename: ":memory:" });
    return {
      description: `local data directory ${config.dataDir} (does not exist yet)`,
      items,
      blobs: new DiskBlobStore(join(config.dataDir, "blobs")),
      runtimeType: "local",
      runtime: undefined,
      close: async () => items.close(),
    };
  }
  const { localAdapters } = await import("../daemon.js");
  // The same adapters the local daemon builds, so prepared runtimes are where it looks for them.
  const adapters = await localAdapters(config);
  return {
    description: `local data directory ${config.dataDir}`,
    items: adapters.items,
    blobs: adapters.blobs,
    runtimeType: adapters.runtimeType,
    runtime: async () => adapters.runtime,
    close: async () => (adapters.items as { close?: () => void }).close?.(),
  };
}

async function awsParts(config: DaemonConfig): Promise<TargetParts> {
  const required = (value: string | undefined, name: string): string => {
    if (!value) throw new Error(`${name} must be set when STORE_BACKEND=aws`);
    return value;
  };
  const table = required(config.metadataTable, "METADATA_TABLE");
  const bucket = required(config.packageBucket, "PACKAGE_BUCKET");
  const [{ DynamoDbItemStore }, { S3BlobStore }] = await Promise.all([
    import("../adapters/aws/dynamodb-item-store.js"),
    import("../adapters/aws/s3-blob-store.js"),
  ]);
  const items = new DynamoDbItemStore({ tableName: table });
  return {
    description: `DynamoDB table ${table} and S3 bucket ${bucket}`,
    items,
    blobs: new S3BlobStore({ bucket }),
    runtimeType: "serverless",
    runtime: async () => {
      const [{ LambdaPluginRuntime }, { daemonKeySource }] = await Promise.all([
        import("../adapters/aws/lambda-plugin-runtime.js"),
        import("../daemon-key.js"),
      ]);
      return new LambdaPluginRuntime({ config, bucket, items, callbackSecret: daemonKeySource(config) });
    },
    close: async () => undefined,
  };
}
