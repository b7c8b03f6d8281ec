/**
 * The Go daemon's rows → our records, in plain TypeScript (no database, no AWS). A row that
 * cannot be mapped is a RowError naming it; rows that map to nothing on purpose (remote
 * debugging plugins, leftovers of uninstalled plugins, duplicates older upstream versions let
 * through) become skips with a reason the report prints.
 */
import {
  identifierParts,
  isRemoteLike,
  isUniqueIdentifier,
  type PluginUniqueIdentifier,
} from "../domain/identifier.js";
import type { PluginDeclaration } from "../domain/manifest.js";
import type { Endpoint } from "../stores/endpoints.js";
import type { Installation } from "../stores/installations.js";
import {
  type EndpointRow,
  type GoSnapshot,
  type InstallationRow,
  type ProviderKind,
  type ProviderRow,
  providerTables,
  RowError,
  type TenantStorageRow,
} from "./go-rows.js";

/** What the report counts, one entry per kind of record carried over. */
export const KINDS = ["packages", "installations", ...Object.values(providerTables), "endpoints", "storage"] as const;
export type Kind = (typeof KINDS)[number];

export interface Skip {
  kind: Kind;
  /** The source row or object, as the operator would look it up. */
  item: string;
  reason: string;
}

export interface PlannedInstallation {
  row: InstallationRow;
  installation: Installation;
}

export interface PlannedEndpoint {
  row: EndpointRow;
  endpoint: Endpoint;
}

export interface PlannedProvider {
  kind: ProviderKind;
  row: ProviderRow;
  installation: Installation;
}

export interface PlannedPackage {
  uniqueIdentifier: PluginUniqueIdentifier;
  /** The installation rows that use it (the first is named when the package cannot be carried). */
  rowIds: string[];
}

/** Source state that is deliberately not carried, with why (the report lists it). */
export interface NotCarried {
  table: string;
  rows: number;
  reason: string;
}

export interface MigrationPlan {
  packages: PlannedPackage[];
  installations: PlannedInstallation[];
  providers: PlannedProvider[];
  endpoints: PlannedEndpoint[];
  storages: TenantStorageRow[];
  skipped: Skip[];
  notCarried: NotCarried[];
}

export const describeInstallation = (row: InstallationRow) =>
  `plugin_installations row ${row.id} (tenant ${row.tenant_id}, ${row.plugin_unique_identifier})`;
export const describeEndpoint = (row: EndpointRow) =>
  `endpoints row ${row.id} (tenant ${row.tenant_id}, hook ${row.hook_id})`;
export const describeProvider = (kind: ProviderKind, row: ProviderRow) =>
  `${providerTables[kind]} row ${row.id} (tenant ${row.tenant_id}, provider ${row.provider})`;

/** One upstream installation as ours; ids, source and meta kept. Counters start at zero: each migrated endpoint counts itself. */
export function mapInstallation(row: InstallationRow, runtimeType: Installation["runtime_type"]): Installation {
  if (!isUniqueIdentifier(row.plugin_unique_identifier)) {
    throw new RowError(
      "plugin_installations",
      row.id,
      `plugin_unique_identifier "${row.plugin_unique_identifier}" is not a valid identifier`,
    );
  }
  const pluginId = identifierParts(row.plugin_unique_identifier).pluginId;
  if (row.plugin_id !== pluginId) {
    throw new RowError(
      "plugin_installations",
      row.id,
      `plugin_id "${row.plugin_id}" does not match its identifier ${row.plugin_unique_identifier}`,
    );
  }
  if (!["local", "serverless", "remote", ""].includes(row.runtime_type)) {
    throw new RowError("plugin_installations", row.id, `unknown runtime_type "${row.runtime_type}"`);
  }
  return {
    id: row.id,
    tenant_id: row.tenant_id,
    plugin_id: pluginId,
    plugin_unique_identifier: row.plugin_unique_identifier,
    // Ours runs it the way this deployment runs plugins (subprocess locally, Lambda on AWS).
    runtime_type: runtimeType,
    source: row.source,
    meta: row.meta,
    endpoints_setups: 0,
    endpoints_active: 0,
    created_at: row.created_at,
    updated_at: row.updated_at,
  };
}

/** One upstream endpoint as ours: id, hook id and the encrypted settings exactly as stored. */
export function mapEndpoint(row: EndpointRow): Endpoint {
  if (!/^[A-Za-z0-9_-]{1,127}$/.test(row.hook_id)) {
    throw new RowError("endpoints", row.id, `hook_id "${row.hook_id}" cannot be served as /e/{hook_id}`);
  }
  return {
    id: row.id,
    created_at: row.created_at,
    updated_at: row.updated_at,
    name: row.name,
    hook_id: row.hook_id,
    tenant_id: row.tenant_id,
    user_id: row.user_id,
    plugin_id: row.plugin_id,
    expired_at: row.expired_at,
    enabled: row.enabled,
    settings: row.settings,
  };
}

const isRemote = (row: InstallationRow) =>
  row.runtime_type === "remote" ||
  (isUniqueIdentifier(row.plugin_unique_identifier) && isRemoteLike(row.plugin_unique_identifier));

export function planMigration(snapshot: GoSnapshot, runtimeType: Installation["runtime_type"]): MigrationPlan {
  const skipped: Skip[] = [];
  const tenantPlugin = (tenant: string, plugin: string) => `${tenant}\u0000${plugin}`;

  // Installations: one per (tenant, plugin id), as our key allows and upstream's unique index now enforces.
  const chosen = new Map<string, PlannedInstallation>();
  const remotes = new Set<string>();
  for (const row of snapshot.installations) {
    if (isRemote(row)) {
      remotes.add(tenantPlugin(row.tenant_id, row.plugin_id));
      skipped.push({
        kind: "installations",
        item: describeInstallation(row),
        reason: "remote debugging plugin: it registers again when its process connects to this daemon",
      });
      continue;
    }
    const planned = { row, installation: mapInstallation(row, runtimeType) };
    const key = tenantPlugin(row.tenant_id, planned.installation.plugin_id);
    const other = chosen.get(key);
    if (!other) {
      chosen.set(key, planned);
      continue;
    }
    // Daemons before upstream's idx_tenant_plugin could store two; the newer one is what upstream served last.
    const [keep, drop] = other.row.updated_at >= row.updated_at ? [other, planned] : [planned, other];
    chosen.set(key, keep);
    skipped.push({
      kind: "installations",
      item: describeInstallation(drop.row),
      reason: `duplicate installation of ${drop.installation.plugin_id} in this tenant; kept the newer row ${keep.row.id}`,
    });
  }
  const installations = [...chosen.values()];

  const providers: PlannedProvider[] = [];
  for (const [kind, rows] of Object.entries(snapshot.providers) as Array<[ProviderKind, ProviderRow[]]>) {
    for (const row of rows) {
      const owner = chosen.get(tenantPlugin(row.tenant_id, row.plugin_id));
      if (owner && owner.installation.plugin_unique_identifier === row.plugin_unique_identifier) {
        providers.push({ kind, row, installation: owner.installation });
      } else {
        skipped.push({
          kind: providerTables[kind],
          item: describeProvider(kind, row),
          reason: remotes.has(tenantPlugin(row.tenant_id, row.plugin_id))
            ? "belongs to a remote debugging plugin"
            : "no installation of this plugin version in this tenant (left over by an upgrade or uninstall)",
        });
      }
    }
  }

  const endpoints: PlannedEndpoint[] = [];
  for (const row of snapshot.endpoints) {
    const endpoint = mapEndpoint(row);
    if (chosen.has(tenantPlugin(row.tenant_id, row.plugin_id))) {
      endpoints.push({ row, endpoint });
    } else {
      skipped.push({
        kind: "endpoints",
        item: describeEndpoint(row),
        reason: remotes.has(tenantPlugin(row.tenant_id, row.plugin_id))
          ? "belongs to a remote debugging plugin, which is not carried over"
          : `plugin ${row.plugin_id} is not installed in this tenant`,
      });
    }
  }

  const packages = new Map<string, PlannedPackage>();
  for (const { row, installation } of installations) {
    const uid = installation.plugin_unique_identifier;
    const entry = packages.get(uid) ?? { uniqueIdentifier: uid, rowIds: [] };
    entry.rowIds.push(row.id);
    packages.set(uid, entry);
  }

  const uploadedOnly = snapshot.declarations.filter((d) => !packages.has(d.plugin_unique_identifier)).length;
  const notCarried: NotCarried[] = [
    {
      table: "plugins",
      rows: snapshot.plugins.length,
      reason: "derived: our package records and per-tenant package references replace the rows and their refers counts",
    },
    {
      table: "plugin_declarations",
      rows: snapshot.declarations.length - uploadedOnly,
      reason: "derived: each declaration is decoded again from its package",
    },
    {
      table: "plugin_declarations (installed nowhere)",
      rows: uploadedOnly,
      reason: "packages uploaded but not installed in any tenant; Dify uploads again when it installs",
    },
    {
      table: "install_tasks",
      rows: snapshot.counts.install_tasks,
      reason: "install tasks are not migrated (Dify only polls running ones)",
    },
    {
      table: "serverless_runtimes",
      rows: snapshot.counts.serverless_runtimes,
      reason: "runtime state: runtimes are prepared again (--prepare)",
    },
    {
      table: "plugin_readme_records",
      rows: snapshot.counts.plugin_readme_records,
      reason: "derived: readmes are read from the package",
    },
  ];

  return {
    packages: [...packages.values()],
    installations,
    providers,
    endpoints,
    storages: snapshot.storages,
    skipped,
    notCarried: notCarried.filter((n) => n.rows > 0),
  };
}

/** Why a provider row does not match what our catalog derives from the declaration, if it does not. */
export function providerMismatch(
  kind: ProviderKind,
  row: ProviderRow,
  declaration: PluginDeclaration,
): string | undefined {
  const provided = (declaration as Record<string, unknown>)[kind] as
    | { identity?: { name?: string }; provider?: string }
    | undefined;
  if (!provided) return `the plugin's declaration has no ${kind} provider`;
  const name = kind === "model" ? provided.provider : provided.identity?.name;
  return name === row.provider ? undefined : `the declaration names the provider "${String(name)}"`;
}

export const describeStorageKey = (row: TenantStorageRow, key: string) =>
  `storage key "${key}" of ${row.plugin_id} in tenant ${row.tenant_id}`;
