/**
 * Reads the Go daemon's PostgreSQL database in one REPEATABLE READ, READ ONLY transaction: every
 * table comes from the same snapshot, and the server itself refuses any write. Only the columns
 * the migration uses are selected, so columns older or newer daemon versions added (such as the
 * dropped `declaration` columns upstream's AutoMigrate leaves behind) do not matter.
 */
import pg from "pg";
import type { z } from "zod";
import { redactedUrl } from "../go-daemon-settings.js";
import {
  type CountedTable,
  countedTables,
  declarationRow,
  endpointRow,
  type GoSnapshot,
  installationRow,
  type ProviderKind,
  type ProviderRow,
  parseRow,
  pluginRow,
  providerRow,
  providerTables,
  tenantStorageRow,
} from "../go-rows.js";
import type { GoDatabase } from "./ports.js";

/** Columns read per table; the first tables must exist, later daemon versions added the others. */
const columns = {
  plugin_installations: [
    "id",
    "created_at",
    "updated_at",
    "tenant_id",
    "plugin_id",
    "plugin_unique_identifier",
    "runtime_type",
    "endpoints_setups",
    "endpoints_active",
    "source",
    "meta",
  ],
  endpoints: [
    "id",
    "created_at",
    "updated_at",
    "name",
    "hook_id",
    "tenant_id",
    "user_id",
    "plugin_id",
    "expired_at",
    "enabled",
    "settings",
  ],
  tenant_storages: ["id", "tenant_id", "plugin_id", "size"],
  plugins: ["id", "plugin_unique_identifier", "plugin_id", "refers", "install_type"],
  plugin_declarations: ["id", "plugin_unique_identifier", "plugin_id"],
} as const;
const providerColumns = ["id", "tenant_id", "provider", "plugin_unique_identifier", "plugin_id"];
/** Tables some daemon versions do not have yet (datasources and triggers came later). */
const optionalTables = new Set<string>(["datasource_installations", "trigger_installations", ...countedTables]);

export class PostgresGoDatabase implements GoDatabase {
  readonly description: string;
  private readonly client: pg.Client;
  private connected = false;

  constructor(databaseUrl: string) {
    this.description = `PostgreSQL ${redactedUrl(databaseUrl)}`;
    this.client = new pg.Client({ connectionString: databaseUrl, application_name: "dify-plugin-daemon-migration" });
  }

  async snapshot(): Promise<GoSnapshot> {
    if (!this.connected) {
      try {
        await this.client.connect();
      } catch (err) {
        throw new Error(`cannot connect to the Go daemon's database (${this.description}): ${(err as Error).message}`);
      }
      this.connected = true;
    }
    await this.client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    try {
      const present = await this.tableColumns();
      const select = async (table: string, wanted: readonly string[]) => {
        const have = present.get(table);
        if (!have) {
          if (optionalTables.has(table)) return [];
          throw new Error(
            `the database has no table "${table}": is this the Go daemon's database (its DB_DATABASE, dify_plugin in Dify's docker compose)?`,
          );
        }
        const missing = wanted.filter((c) => !have.has(c));
        if (missing.length > 0) {
          throw new Error(
            `table "${table}" has no column ${missing.map((c) => `"${c}"`).join(", ")}: upgrade the Go daemon once (it migrates its tables on start), then run this again`,
          );
        }
        const order = have.has("created_at") ? "created_at, id" : "id";
        const list = wanted.map((c) => `"${c}"`).join(", ");
        const result = await this.client.query(`SELECT ${list} FROM "${table}" ORDER BY ${order}`);
        return result.rows as Array<Record<string, unknown>>;
      };
      const rows = <T>(schema: z.ZodType<T>, table: string, raw: Array<Record<string, unknown>>) =>
        raw.map((r) => parseRow(schema, table, r));

      const providers = {} as Record<ProviderKind, ProviderRow[]>;
      for (const [kind, table] of Object.entries(providerTables) as Array<[ProviderKind, string]>) {
        providers[kind] = rows(providerRow, table, await select(table, providerColumns));
      }
      const counts = {} as Record<CountedTable, number>;
      for (const table of countedTables) {
        counts[table] = present.has(table)
          ? Number((await this.client.query(`SELECT count(*) AS n FROM "${table}"`)).rows[0].n)
          : 0;
      }
      return {
        installations: rows(
          installationRow,
          "plugin_installations",
          await select("plugin_installations", columns.plugin_installations),
        ),
        endpoints: rows(endpointRow, "endpoints", await select("endpoints", columns.endpoints)),
        storages: rows(tenantStorageRow, "tenant_storages", await select("tenant_storages", columns.tenant_storages)),
        plugins: rows(pluginRow, "plugins", await select("plugins", columns.plugins)),
        declarations: rows(
          declarationRow,
          "plugin_declarations",
          await select("plugin_declarations", columns.plugin_declarations),
        ),
        providers,
        counts,
      };
    } finally {
      // Nothing to keep: the transaction only read. A broken connection must not hide the first error.
      await this.client.query("ROLLBACK").catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    if (this.connected) await this.client.end();
    this.connected = false;
  }

  /** The tables of the current schema and their columns. */
  private async tableColumns(): Promise<Map<string, Set<string>>> {
    const result = await this.client.query<{ table_name: string; column_name: string }>(
      "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()",
    );
    const tables = new Map<string, Set<string>>();
    for (const { table_name, column_name } of result.rows) {
      if (!tables.has(table_name)) tables.set(table_name, new Set());
      tables.get(table_name)!.add(column_name);
    }
    return tables;
  }
}
