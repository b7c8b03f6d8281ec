/**
 * Key layout of the single-table design (docs/table-design.md). Every item type's keys are
 * built here so the layout is readable in one place.
 */
export const keys = {
  /** A tenant's auto-upgrade strategy (one per tenant, like Dify's unique tenant_id). */
  upgradeStrategy: (tenantId: string) => ({ pk: `TENANT#${tenantId}`, sk: "AUTO_UPGRADE#STRATEGY" }),
  /**
   * Index entry of an enabled strategy: the checker queries the tenants of one 15-minute slot of
   * the day (0-95), spread over a few shards so no index partition holds every tenant of a slot.
   */
  upgradeSlot: (slot: number, shard: number, tenantId: string) => ({
    gsi1pk: `AUTO_UPGRADE_SLOT#${String(slot).padStart(2, "0")}#${shard}`,
    gsi1sk: `TENANT#${tenantId}`,
  }),
  upgradeSlotPartition: (slot: number, shard: number) => `AUTO_UPGRADE_SLOT#${String(slot).padStart(2, "0")}#${shard}`,
  /** The outcome of the tenant's last auto-upgrade check. */
  upgradeLastCheck: (tenantId: string) => ({ pk: `TENANT#${tenantId}`, sk: "AUTO_UPGRADE#LAST_CHECK" }),
  /** Held while an upgrade to exactly this package starts, so overlapping checks start it once. */
  upgradeLease: (tenantId: string, targetUid: string) => ({
    pk: `TENANT#${tenantId}`,
    sk: `AUTO_UPGRADE#LEASE#${targetUid}`,
  }),
  /** One item per claimed check slot (absolute 15-minute slot number, zero-padded so it sorts). */
  upgradeSlotClaim: (absoluteSlot: number) => ({
    pk: "AUTO_UPGRADE#SLOTS",
    sk: `SLOT#${String(absoluteSlot).padStart(12, "0")}`,
  }),
  upgradeSlotClaims: "AUTO_UPGRADE#SLOTS",
  upgradeSlotClaimPrefix: "SLOT#",
  /** The cached marketplace snapshot: a pointer per marketplace URL, and the entries in chunks. */
  marketplaceSnapshot: (marketplace: string) => ({ pk: "MARKETPLACE#SNAPSHOT", sk: `CURRENT#${marketplace}` }),
  marketplaceSnapshotChunk: (snapshotId: string, index: number) => ({
    pk: `MARKETPLACE#SNAPSHOT#${snapshotId}`,
    sk: `CHUNK#${String(index).padStart(5, "0")}`,
  }),
  marketplaceSnapshotChunks: (snapshotId: string) => `MARKETPLACE#SNAPSHOT#${snapshotId}`,
  package: (uid: string) => ({ pk: `PACKAGE#${uid}`, sk: "PACKAGE" }),
  /** One item per tenant using a package: the package's reference count, queryable per package. */
  packageUse: (uid: string, tenantId: string) => ({ pk: `PACKAGE#${uid}`, sk: `USE#${tenantId}` }),
  packageUsePrefix: "USE#",
  /** Installs in progress and a removal in progress of the package's shared runtime (runtime-claims.ts). */
  runtimeClaims: (uid: string) => ({ pk: `PACKAGE#${uid}`, sk: "RUNTIME_CLAIMS" }),
  /** Keyed by plugin id: a tenant has at most one installation of a plugin, enforced by the key. */
  installation: (tenantId: string, pluginId: string) => ({ pk: `TENANT#${tenantId}`, sk: `INSTALLATION#${pluginId}` }),
  installationPrefix: "INSTALLATION#",
  installationById: (installationId: string) => ({ gsi1pk: `INSTALLATION#${installationId}`, gsi1sk: "INSTALLATION" }),
  /** Task ids are UUIDv7, so sort-key order is creation order. */
  installTask: (tenantId: string, taskId: string) => ({ pk: `TENANT#${tenantId}`, sk: `TASK#${taskId}` }),
  installTaskPrefix: "TASK#",
  /** Index entry of a task that is not finished yet, so a restarted daemon finds the ones it interrupted. */
  activeInstallTask: (tenantId: string, taskId: string) => ({
    gsi1pk: "INSTALL_TASKS#ACTIVE",
    gsi1sk: `${tenantId}#${taskId}`,
  }),
  activeInstallTasks: "INSTALL_TASKS#ACTIVE",
  tenant: (tenantId: string) => `TENANT#${tenantId}`,
  /** Endpoint ids are UUIDv7, so sort-key order is creation order; the hook id finds one through gsi1. */
  endpoint: (tenantId: string, endpointId: string) => ({ pk: `TENANT#${tenantId}`, sk: `ENDPOINT#${endpointId}` }),
  endpointPrefix: "ENDPOINT#",
  endpointByHook: (hookId: string) => ({ gsi1pk: `HOOK#${hookId}`, gsi1sk: "ENDPOINT" }),
  /** One partition per tenant and plugin: every stored key plus the usage counter the size cap checks. */
  storageEntry: (tenantId: string, pluginId: string, key: string) => ({
    pk: `STORAGE#${tenantId}#${pluginId}`,
    sk: `KEY#${key}`,
  }),
  storageUsage: (tenantId: string, pluginId: string) => ({ pk: `STORAGE#${tenantId}#${pluginId}`, sk: "USAGE" }),
  /** A tenant's remote-debugging key, and the lookup from a key to its tenant (upstream's id2key / key2id). */
  debuggingKey: (tenantId: string) => ({ pk: `TENANT#${tenantId}`, sk: "DEBUGGING#KEY" }),
  debuggingKeyLookup: (key: string) => ({ pk: `DEBUGGING_KEY#${key}`, sk: "DEBUGGING_KEY" }),
  /** Plugin sessions that call back over HTTP (Lambda runtime), expiring after 30 minutes. */
  pluginSession: (sessionId: string) => ({ pk: `SESSION#${sessionId}`, sk: "SESSION" }),
};
