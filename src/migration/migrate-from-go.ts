/**
 * `migrate from-go`: carries a Go daemon's state into our stores.
 *
 * 1. read the database in one read-only snapshot and map the rows (mapping.ts);
 * 2. check everything before writing anything: every package is found in the Go daemon's
 *    storage and its checksum matches its identifier, storage keys are listed;
 * 3. write what the target lacks, in dependency order (packages, installations, endpoints,
 *    storage values); what is already there is left alone, so a second run changes nothing;
 * 4. with --prepare, prepare each plugin's runtime as an install would.
 * A dry run does 1, 2 and the existence checks of 3, and writes nothing.
 */

import type { PluginUniqueIdentifier } from "../domain/identifier.js";
import type { PluginDeclaration } from "../domain/manifest.js";
import type { TenantStorageRow } from "./go-rows.js";
import { providerTables } from "./go-rows.js";
import { assignStorageKeys, type GoStorageLayout, packageKeys, tenantStoragePrefix } from "./go-storage-layout.js";
import {
  describeEndpoint,
  describeInstallation,
  describeProvider,
  describeStorageKey,
  type Kind,
  planMigration,
  providerMismatch,
  type Skip,
} from "./mapping.js";
import { emptyCounts, type MigrationReport, type RuntimeStatus } from "./report.js";
import type { GoDatabase, GoStorage } from "./sources/ports.js";
import type { MigrationTarget } from "./target.js";

export interface MigrationSources {
  database: GoDatabase;
  storage: GoStorage;
  layout: GoStorageLayout;
}

export interface MigrationOptions {
  dryRun: boolean;
  prepare: boolean;
  progress?: (event: ProgressEvent) => void;
}

export interface ProgressEvent {
  step: string;
  index: number;
  total: number;
  item: string;
  outcome: string;
}

/** Something the migration cannot carry; nothing after it is written. */
export class MigrationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MigrationError";
  }
}

interface StorageValue {
  row: TenantStorageRow;
  key: string;
  objectKey: string;
}

export async function migrateFromGo(
  sources: MigrationSources,
  target: MigrationTarget,
  options: MigrationOptions,
): Promise<MigrationReport> {
  const progress = options.progress ?? (() => undefined);
  const counts = emptyCounts();
  const skipped: Skip[] = [];
  const skip = (s: Skip) => {
    skipped.push(s);
    counts[s.kind].skipped += 1;
  };

  const plan = planMigration(await sources.database.snapshot(), target.runtimeType);
  plan.skipped.forEach(skip);

  // Check: every package exists in the Go storage and is the package its identifier names.
  const declarations = new Map<string, PluginDeclaration>();
  const packageSources = new Map<string, string>();
  for (const [i, planned] of plan.packages.entries()) {
    const uid = planned.uniqueIdentifier;
    let outcome = "already there";
    const stored = await target.declaration(uid);
    if (stored) {
      declarations.set(uid, stored);
    } else {
      const { key, bytes } = await readPackage(sources, uid, planned.rowIds[0]!, plan);
      declarations.set(uid, (await checkPackage(target, bytes, uid, key, planned.rowIds[0]!, plan)).record.declaration);
      packageSources.set(uid, key);
      outcome = `checked (${key})`;
    }
    progress({ step: "checking packages", index: i + 1, total: plan.packages.length, item: uid, outcome });
  }

  // Check: list each tenant's storage values and give them to their plugins.
  const storageValues: StorageValue[] = [];
  const tenants = [...new Set(plan.storages.map((s) => s.tenant_id))];
  for (const [i, tenant] of tenants.entries()) {
    const rows = plan.storages.filter((s) => s.tenant_id === tenant);
    const prefix = tenantStoragePrefix(sources.layout, tenant);
    const { byPlugin, unassigned } = assignStorageKeys(
      prefix,
      await sources.storage.list(prefix),
      rows.map((r) => r.plugin_id),
    );
    for (const row of rows) {
      for (const key of byPlugin.get(row.plugin_id) ?? [])
        storageValues.push({ row, key, objectKey: `${prefix}${row.plugin_id}/${key}` });
    }
    for (const objectKey of unassigned) {
      skip({ kind: "storage", item: `storage object ${objectKey}`, reason: "no tenant_storages row names its plugin" });
    }
    progress({
      step: "listing plugin storage",
      index: i + 1,
      total: tenants.length,
      item: `tenant ${tenant}`,
      outcome: `${storageValues.length} keys so far`,
    });
  }

  const write = !options.dryRun;
  const done = (
    kind: Kind,
    step: string,
    index: number,
    total: number,
    item: string,
    outcome: "migrated" | "present",
  ) => {
    counts[kind][outcome] += 1;
    const label = outcome === "present" ? "already there" : write ? "migrated" : "would migrate";
    progress({ step, index, total, item, outcome: label });
  };

  for (const [i, planned] of plan.packages.entries()) {
    const uid = planned.uniqueIdentifier;
    const key = packageSources.get(uid);
    if (key === undefined) {
      done("packages", "packages", i + 1, plan.packages.length, uid, "present");
      continue;
    }
    if (write) {
      const bytes = await sources.storage.read(key);
      if (!bytes)
        throw new MigrationError(
          `${describeRow(plan, planned.rowIds[0]!)}: package file ${key} disappeared during the migration`,
        );
      await target.savePackage(await checkPackage(target, bytes, uid, key, planned.rowIds[0]!, plan));
    }
    done("packages", "packages", i + 1, plan.packages.length, uid, "migrated");
  }

  // Installations, and the provider rows that follow them (our catalog derives those from the declaration).
  const outcomeOf = new Map<string, "migrated" | "present" | "skipped">();
  for (const [i, { row, installation }] of plan.installations.entries()) {
    const item = describeInstallation(row);
    const existing = await target.installation(installation.tenant_id, installation.plugin_id);
    if (existing && existing.id !== installation.id) {
      outcomeOf.set(row.id, "skipped");
      skip({
        kind: "installations",
        item,
        reason: `the tenant already has ${installation.plugin_id} installed here (installation ${existing.id}, ${existing.plugin_unique_identifier}); left as it is`,
      });
      continue;
    }
    if (!existing && write && !(await target.createInstallation(installation))) {
      throw new MigrationError(`${item}: installed concurrently by someone else; run the migration again`);
    }
    outcomeOf.set(row.id, existing ? "present" : "migrated");
    done("installations", "installations", i + 1, plan.installations.length, item, existing ? "present" : "migrated");
  }
  const byInstallation = new Map(plan.installations.map((p) => [p.installation.id, p.row.id]));
  for (const [i, { kind, row, installation }] of plan.providers.entries()) {
    const table = providerTables[kind];
    const item = describeProvider(kind, row);
    const mismatch = providerMismatch(kind, row, declarations.get(installation.plugin_unique_identifier)!);
    const owner = outcomeOf.get(byInstallation.get(installation.id)!);
    if (mismatch || owner === "skipped") {
      skip({ kind: table, item, reason: mismatch ?? "its installation was skipped" });
      continue;
    }
    done(table, "providers", i + 1, plan.providers.length, item, owner === "present" ? "present" : "migrated");
  }

  for (const [i, { row, endpoint }] of plan.endpoints.entries()) {
    const item = describeEndpoint(row);
    if (await target.endpoint(endpoint.tenant_id, endpoint.id)) {
      done("endpoints", "endpoints", i + 1, plan.endpoints.length, item, "present");
      continue;
    }
    const sameHook = await target.endpointByHook(endpoint.hook_id);
    if (sameHook) {
      skip({ kind: "endpoints", item, reason: `hook id already serves endpoint ${sameHook.id} here` });
      continue;
    }
    if (write && !(await target.createEndpoint(endpoint))) {
      skip({ kind: "endpoints", item, reason: `plugin ${endpoint.plugin_id} is not installed in this tenant here` });
      continue;
    }
    done("endpoints", "endpoints", i + 1, plan.endpoints.length, item, "migrated");
  }

  for (const [i, value] of storageValues.entries()) {
    const { row, key } = value;
    const item = describeStorageKey(row, key);
    if (await target.hasStorageKey(row.tenant_id, row.plugin_id, key)) {
      done("storage", "plugin storage", i + 1, storageValues.length, item, "present");
      continue;
    }
    if (write) {
      const bytes = await sources.storage.read(value.objectKey);
      if (!bytes)
        throw new MigrationError(`tenant_storages row ${row.id}: ${value.objectKey} disappeared during the migration`);
      await target.setStorageKey(row.tenant_id, row.plugin_id, key, bytes);
    }
    done("storage", "plugin storage", i + 1, storageValues.length, item, "migrated");
  }

  const runtimes = await runtimeStatuses(plan, outcomeOf, target, options, progress);
  return {
    dry_run: options.dryRun,
    source: { database: sources.database.description, storage: sources.storage.description },
    target: target.description,
    counts,
    skipped,
    not_carried: plan.notCarried,
    runtimes,
  };
}

/** Every package an installation now in the target uses: ready or not, and prepared with --prepare. */
async function runtimeStatuses(
  plan: ReturnType<typeof planMigration>,
  outcomeOf: Map<string, string>,
  target: MigrationTarget,
  options: MigrationOptions,
  progress: (event: ProgressEvent) => void,
): Promise<RuntimeStatus[]> {
  const tenantsOf = new Map<PluginUniqueIdentifier, number>();
  for (const { row, installation } of plan.installations) {
    if (outcomeOf.get(row.id) === "skipped") continue;
    const uid = installation.plugin_unique_identifier;
    tenantsOf.set(uid, (tenantsOf.get(uid) ?? 0) + 1);
  }
  const statuses: RuntimeStatus[] = [];
  for (const [i, [uid, tenants]] of [...tenantsOf.entries()].entries()) {
    const status: RuntimeStatus = {
      plugin_unique_identifier: uid,
      tenants,
      ready: await target.runtimeReady(uid),
      prepared: false,
    };
    if (!status.ready && options.prepare && !options.dryRun) {
      const step = "preparing runtimes";
      const total = tenantsOf.size;
      progress({ step, index: i + 1, total, item: uid, outcome: "preparing" });
      try {
        await target.prepareRuntime(uid, (line) => progress({ step, index: i + 1, total, item: uid, outcome: line }));
        status.ready = true;
        status.prepared = true;
      } catch (err) {
        status.error = err instanceof Error ? err.message : String(err);
      }
    }
    progress({
      step: "runtimes",
      index: i + 1,
      total: tenantsOf.size,
      item: uid,
      outcome: status.ready ? "ready" : (status.error ?? "not prepared"),
    });
    statuses.push(status);
  }
  return statuses;
}

function describeRow(plan: ReturnType<typeof planMigration>, rowId: string): string {
  const planned = plan.installations.find((p) => p.row.id === rowId);
  return planned ? describeInstallation(planned.row) : `plugin_installations row ${rowId}`;
}

async function readPackage(
  sources: MigrationSources,
  uid: string,
  rowId: string,
  plan: ReturnType<typeof planMigration>,
) {
  const keys = packageKeys(sources.layout, uid);
  for (const key of keys) {
    const bytes = await sources.storage.read(key);
    if (bytes) return { key, bytes };
  }
  throw new MigrationError(
    `${describeRow(plan, rowId)}: package not found in ${sources.storage.description} (looked for ${keys.join(" and ")}); ` +
      "check --storage-root/--storage-bucket and PLUGIN_PACKAGE_CACHE_PATH/PLUGIN_INSTALLED_PATH",
  );
}

async function checkPackage(
  target: MigrationTarget,
  bytes: Uint8Array,
  uid: PluginUniqueIdentifier,
  key: string,
  rowId: string,
  plan: ReturnType<typeof planMigration>,
) {
  try {
    return await target.checkPackage(bytes, uid);
  } catch (err) {
    let detail = err instanceof Error ? err.message : String(err);
    // The intake words a mismatch for downloads; here it means the file is not the package its row names.
    const mismatch = /^downloaded package is (\S+), expected/.exec(detail);
    if (mismatch) detail = `its files make it ${mismatch[1]} (the checksum does not match the identifier)`;
    throw new MigrationError(`${describeRow(plan, rowId)}: package ${key} cannot be carried over: ${detail}`);
  }
}
