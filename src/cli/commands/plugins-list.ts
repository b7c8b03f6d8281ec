/** `plugins list`: a tenant's installed plugins (version, installation id, source, runtime). */
import { Command } from "commander";
import { type ConnectionOptions, DaemonClient, print, runCommand, table, withConnection } from "../daemon-client.js";

export interface InstalledRow {
  plugin_id: string;
  plugin_unique_identifier: string;
  installation_id: string;
  version: string;
  source: string;
  runtime_type: string;
  endpoints_active: number;
  updated_at: string;
}

/** Every installation of a tenant (the daemon pages them; 256 is its largest page). */
export async function installedPlugins(client: DaemonClient, tenant: string | undefined): Promise<InstalledRow[]> {
  const rows: InstalledRow[] = [];
  for (let page = 1; ; page++) {
    const data = await client.call<{ list: InstalledRow[]; total: number }>(
      client.tenantPath(tenant, `list?page=${page}&page_size=256`),
    );
    rows.push(...data.list);
    if (rows.length >= data.total || data.list.length === 0) return rows;
  }
}

export function pluginsListCommand(): Command {
  return withConnection(new Command("list").description("list the plugins installed for a tenant")).action(
    async (o: ConnectionOptions) =>
      runCommand(o.json, async () => {
        const rows = await installedPlugins(new DaemonClient(o), o.tenant);
        if (o.json) return print(JSON.stringify(rows, null, 2));
        print(
          table(
            rows.map((r) => ({ ...r, endpoints: r.endpoints_active, updated: r.updated_at.slice(0, 19) })),
            ["plugin_id", "version", "installation_id", "source", "runtime_type", "endpoints", "updated"],
          ),
        );
      }),
  );
}
