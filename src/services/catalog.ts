/**
 * Read views over a tenant's installations joined with their declarations: the plugin list and
 * the per-kind provider lists (tools, models, agent strategies, datasources, triggers).
 */
import { declarationCategory } from "../domain/declaration-facts.js";
import { parseUniqueIdentifier } from "../domain/identifier.js";
import type { PluginCategory, PluginDeclaration } from "../domain/manifest.js";
import type { Installation, Installations } from "../stores/installations.js";
import type { PackageRecords } from "../stores/package-records.js";

export interface InstalledPlugin {
  installation: Installation;
  declaration: PluginDeclaration;
  verified: boolean;
}

/** The provider kinds Dify lists, keyed by the declaration field that holds them. */
export type ProviderKind = "tool" | "model" | "agent_strategy" | "datasource" | "trigger";

export class Catalog {
  constructor(
    private readonly installations: Installations,
    private readonly packages: PackageRecords,
  ) {}

  async installed(tenantId: string): Promise<InstalledPlugin[]> {
    const list = await this.installations.list(tenantId);
    const joined = await Promise.all(list.map((i) => this.join(i)));
    return joined.filter((p): p is InstalledPlugin => p !== undefined);
  }

  async installedPlugin(tenantId: string, pluginId: string): Promise<InstalledPlugin | undefined> {
    const stored = await this.installations.get(tenantId, pluginId);
    return stored ? this.join(stored.installation) : undefined;
  }

  /** The row shape of `management/list`. */
  static listEntry(p: InstalledPlugin) {
    const id = parseUniqueIdentifier(p.installation.plugin_unique_identifier);
    return {
      ...p.installation,
      name: p.declaration.name,
      installation_id: p.installation.id,
      declaration: p.declaration,
      version: id.version,
      checksum: id.checksum,
    };
  }

  /** The row shape of `/tools`, `/models`, ... for one provider kind; undefined when the plugin has none. */
  static providerEntry(p: InstalledPlugin, kind: ProviderKind) {
    const declaration = (p.declaration as Record<string, unknown>)[kind] as { identity?: { name?: string }; provider?: string } | undefined;
    if (!declaration) return undefined;
    const provider = kind === "model" ? String(declaration.provider ?? "") : String(declaration.identity?.name ?? "");
    return {
      id: p.installation.id,
      created_at: p.installation.created_at,
      updated_at: p.installation.updated_at,
      tenant_id: p.installation.tenant_id,
      provider,
      plugin_unique_identifier: p.installation.plugin_unique_identifier,
      plugin_id: p.installation.plugin_id,
      declaration,
      ...(kind === "agent_strategy" ? { meta: p.declaration.meta } : {}),
    };
  }

  static category(p: InstalledPlugin): PluginCategory {
    return declarationCategory(p.declaration);
  }

  private async join(installation: Installation): Promise<InstalledPlugin | undefined> {
    const record = await this.packages.get(installation.plugin_unique_identifier);
    if (!record) return undefined;
    return { installation, declaration: record.declaration, verified: record.verified };
  }
}
