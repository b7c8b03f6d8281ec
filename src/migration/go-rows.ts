/**
 * The upstream Go daemon's state as the migration reads it: one type per table row, validated
 * with zod where the rows enter (any SQL driver hands them over as plain objects). The tables are
 * GORM models of langgenius/dify-plugin-daemon internal/types/models/*.go (commit bdb5642a19009c944b78eca12f3d176801a4a8be):
 * table names are GORM's snake_case plurals, JSON fields (`meta`, `settings`) are text written
 * by GORM's json serializer.
 */
import { z } from "zod";

/** Drivers give timestamps as Date (pg) or text; ours are ISO strings. */
const timestamp = z.union([z.date(), z.string()]).transform((v, ctx) => {
  const date = v instanceof Date ? v : new Date(v);
  if (Number.isNaN(date.getTime())) {
    ctx.addIssue({ code: "custom", message: `not a timestamp: ${String(v)}` });
    return z.NEVER;
  }
  return date.toISOString();
});
/** bigint columns arrive as strings from pg. */
const integer = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const n = Number(v);
  if (!Number.isSafeInteger(n)) {
    ctx.addIssue({ code: "custom", message: `not an integer: ${String(v)}` });
    return z.NEVER;
  }
  return n;
});
/** GORM's json serializer writes text; a json/jsonb column (hand-made schemas) arrives parsed. */
const jsonObject = z.union([z.string(), z.record(z.string(), z.unknown()), z.null()]).transform((v, ctx) => {
  if (v === null || v === "" || v === "null") return {} as Record<string, unknown>;
  if (typeof v !== "string") return v;
  try {
    const parsed: unknown = JSON.parse(v);
    if (parsed === null) return {} as Record<string, unknown>;
    if (typeof parsed === "object" && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
  } catch {
    // reported below
  }
  ctx.addIssue({ code: "custom", message: "not a JSON object" });
  return z.NEVER;
});
const text = z
  .string()
  .nullable()
  .transform((v) => v ?? "");

/** plugin_installations (models.PluginInstallation): one plugin installed in one tenant. */
export const installationRow = z.object({
  id: z.string(),
  created_at: timestamp,
  updated_at: timestamp,
  tenant_id: z.string(),
  plugin_id: z.string(),
  plugin_unique_identifier: z.string(),
  runtime_type: text,
  endpoints_setups: integer.nullable().transform((v) => v ?? 0),
  endpoints_active: integer.nullable().transform((v) => v ?? 0),
  source: text,
  meta: jsonObject,
});

/** endpoints (models.Endpoint); `settings` is what Dify's encrypter returned. */
export const endpointRow = z.object({
  id: z.string(),
  created_at: timestamp,
  updated_at: timestamp,
  name: text,
  hook_id: z.string(),
  tenant_id: z.string(),
  user_id: text,
  plugin_id: z.string(),
  expired_at: timestamp,
  enabled: z
    .boolean()
    .nullable()
    .transform((v) => v ?? false),
  settings: jsonObject,
});

/** tool_/ai_model_/agent_strategy_/datasource_/trigger_installations: one provider of an installed plugin. */
export const providerRow = z.object({
  id: z.string(),
  tenant_id: z.string(),
  provider: z.string(),
  plugin_unique_identifier: text,
  plugin_id: text,
});

/** tenant_storages (models.TenantStorage): the byte count of one tenant's storage for one plugin. */
export const tenantStorageRow = z.object({
  id: z.string(),
  tenant_id: z.string(),
  plugin_id: z.string(),
  size: integer,
});

/** plugins (models.Plugin): one package in use, with its reference count. */
export const pluginRow = z.object({
  id: z.string(),
  plugin_unique_identifier: z.string(),
  plugin_id: text,
  refers: integer.nullable().transform((v) => v ?? 0),
  install_type: text,
});

/** plugin_declarations (models.PluginDeclaration): every package ever uploaded. */
export const declarationRow = z.object({
  id: z.string(),
  plugin_unique_identifier: z.string(),
  plugin_id: text,
});

export type InstallationRow = z.infer<typeof installationRow>;
export type EndpointRow = z.infer<typeof endpointRow>;
export type ProviderRow = z.infer<typeof providerRow>;
export type TenantStorageRow = z.infer<typeof tenantStorageRow>;
export type PluginRow = z.infer<typeof pluginRow>;
export type DeclarationRow = z.infer<typeof declarationRow>;

/** The provider tables, keyed by the declaration field our catalog derives them from. */
export const providerTables = {
  tool: "tool_installations",
  model: "ai_model_installations",
  agent_strategy: "agent_strategy_installations",
  datasource: "datasource_installations",
  trigger: "trigger_installations",
} as const;
export type ProviderKind = keyof typeof providerTables;

/** Tables read only to be counted in the report (their state is not carried, see NOT_CARRIED). */
export const countedTables = ["install_tasks", "serverless_runtimes", "plugin_readme_records"] as const;
export type CountedTable = (typeof countedTables)[number];

/** Everything the migration reads from the database, as one consistent snapshot. */
export interface GoSnapshot {
  installations: InstallationRow[];
  endpoints: EndpointRow[];
  providers: Record<ProviderKind, ProviderRow[]>;
  storages: TenantStorageRow[];
  plugins: PluginRow[];
  declarations: DeclarationRow[];
  counts: Record<CountedTable, number>;
}

/** A row that does not fit its table's shape, named so the operator can find it. */
export class RowError extends Error {
  constructor(
    readonly table: string,
    readonly rowId: string,
    detail: string,
  ) {
    super(`${table} row ${rowId}: ${detail}`);
    this.name = "RowError";
  }
}

/** Validates one raw row; the error names the table, the row id and the offending fields. */
export function parseRow<T>(schema: z.ZodType<T>, table: string, raw: Record<string, unknown>): T {
  const parsed = schema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const id = typeof raw.id === "string" ? raw.id : "(no id)";
  throw new RowError(
    table,
    id,
    parsed.error.issues.map((i) => `${i.path.join(".") || "row"}: ${i.message}`).join("; "),
  );
}
