/**
 * Read views over a tenant's installations joined with their declarations: the plugin list, the
 * category search, the per-kind provider lists (tools, models, agent strategies, datasources,
 * triggers) and the questions Dify asks about them (which are missing, which tools exist).
 */
import { declarationCategory } from "../domain/declaration-facts.js";
import { identifierParts, type PluginUniqueIdentifier } from "../domain/identifier.js";
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

export const PLUGIN_CATEGORIES = ["tool", "model", "extension", "agent-strategy", "datasource", "trigger"] as const;

/** The languages `/:category/list` searches in (upstream validates `oneof=en_US zh_Hans ja_JP pt_BR`). */
export const LISTING_LANGUAGES = ["en_US", "zh_Hans", "ja_JP", "pt_BR"] as const;

/** Where upstream keeps each category's installations: a provider table, except for extensions. */
const CATEGORY_PROVIDER: Record<PluginCategory, ProviderKind | undefined> = {
  tool: "tool",
  model: "model",
  "agent-strategy": "agent_strategy",
  datasource: "datasource",
  trigger: "trigger",
  extension: undefined,
};

export interface ListFilters {
  query?: string;
  tags: string[];
  language?: string;
}

/** An identifier Dify expects installed that the tenant has not, or has in another version. */
export interface MissingInstallation {
  plugin_unique_identifier: string;
  /** The identifier installed now; empty when the plugin is not installed at all. */
  current_identifier: string;
}

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

  /** The identifier the tenant has installed for a plugin, if any. */
  async currentIdentifier(tenantId: string, pluginId: string): Promise<PluginUniqueIdentifier | undefined> {
    return (await this.installations.get(tenantId, pluginId))?.installation.plugin_unique_identifier;
  }

  /**
   * Whether any tenant has the package installed, as upstream's `plugins` table answers it (a
   * stored package alone does not count; internal/service/decode_service.go FetchPluginFromIdentifier).
   */
  async installedAnywhere(uniqueIdentifier: PluginUniqueIdentifier): Promise<boolean> {
    return (await this.packages.users(uniqueIdentifier)).length > 0;
  }

  /** The ids of the tenant's plugins in a category, once each (see providesCategory). */
  async pluginIds(tenantId: string, category: PluginCategory): Promise<string[]> {
    const ids = (await this.installed(tenantId))
      .filter((p) => Catalog.providesCategory(p, category))
      .map((p) => p.installation.plugin_id);
    return [...new Set(ids)];
  }

  /** The installed plugins among `pluginIds`, in their order; ids not installed are left out. */
  async installedPlugins(tenantId: string, pluginIds: string[]): Promise<InstalledPlugin[]> {
    const found = await Promise.all(pluginIds.map((id) => this.installedPlugin(tenantId, id)));
    return found.filter((p): p is InstalledPlugin => p !== undefined);
  }

  /** Of `uniqueIdentifiers`, those the tenant does not have installed in exactly that version. */
  async missing(
    tenantId: string,
    uniqueIdentifiers: readonly PluginUniqueIdentifier[],
  ): Promise<MissingInstallation[]> {
    const missing: MissingInstallation[] = [];
    for (const raw of uniqueIdentifiers) {
      const current = await this.currentIdentifier(tenantId, identifierParts(raw).pluginId);
      if (current !== raw) missing.push({ plugin_unique_identifier: raw, current_identifier: current ?? "" });
    }
    return missing;
  }

  /** `/:category/list`: the tenant's plugins of a category that pass the filters. */
  async search(tenantId: string, category: PluginCategory, filters: ListFilters): Promise<InstalledPlugin[]> {
    return (await this.installed(tenantId)).filter(
      (p) => Catalog.category(p) === category && Catalog.matchesListFilters(p, filters),
    );
  }

  /** The provider rows of one kind, one per plugin that declares it. */
  async providers(tenantId: string, kind: ProviderKind) {
    return (await this.installed(tenantId)).map((p) => Catalog.providerEntry(p, kind)).filter((r) => r !== undefined);
  }

  /** The provider row of one kind a plugin declares; undefined when it is not installed or has none. */
  async provider(tenantId: string, pluginId: string, kind: ProviderKind) {
    const plugin = await this.installedPlugin(tenantId, pluginId);
    return plugin && Catalog.providerEntry(plugin, kind);
  }

  /** For each (plugin, provider) pair, whether the tenant has that plugin with that tool provider. */
  async toolsExist(tenantId: string, pairs: Array<{ plugin_id: string; provider_name: string }>): Promise<boolean[]> {
    return Promise.all(
      pairs.map(
        async ({ plugin_id, provider_name }) =>
          (await this.provider(tenantId, plugin_id, "tool"))?.provider === provider_name,
      ),
    );
  }

  /** `models/bindings`: which installation serves each model provider, with its version. */
  async modelBindings(tenantId: string) {
    return (await this.installed(tenantId)).flatMap((p) => {
      const entry = Catalog.providerEntry(p, "model");
      if (!entry) return [];
      const { installation } = p;
      return [
        {
          provider: entry.provider,
          installation_id: installation.id,
          plugin_id: installation.plugin_id,
          plugin_unique_identifier: installation.plugin_unique_identifier,
          runtime_type: installation.runtime_type,
          source: installation.source,
          version: identifierParts(installation.plugin_unique_identifier).version,
          verified: p.verified,
        },
      ];
    });
  }

  /** The row shape of `management/list`. */
  static listEntry(p: InstalledPlugin) {
    const id = identifierParts(p.installation.plugin_unique_identifier);
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
    const declaration = (p.declaration as Record<string, unknown>)[kind] as
      | { identity?: { name?: string }; provider?: string }
      | undefined;
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

  /**
   * Whether `installation/ids?category=` lists the plugin: upstream reads the category's provider
   * table (a plugin with a tool provider counts as a tool whatever else it declares), and derives
   * extensions from the declaration (internal/service/manage_plugin.go ListInstalledPluginIDs).
   */
  static providesCategory(p: InstalledPlugin, category: PluginCategory): boolean {
    const kind = CATEGORY_PROVIDER[category];
    return kind ? Catalog.providerEntry(p, kind) !== undefined : Catalog.category(p) === category;
  }

  /**
   * `/:category/list` filters as upstream's pluginMatchesCategoryListFilters: any requested tag,
   * then the query, case-insensitive, in the plugin id, the name, or the label or description in
   * the requested language (en_US when that text is empty or the language unknown).
   */
  static matchesListFilters(p: InstalledPlugin, filters: ListFilters): boolean {
    const tags = p.declaration.tags ?? [];
    if (filters.tags.length && !filters.tags.some((t) => tags.some((tag) => tag === t))) return false;
    if (!filters.query) return true;
    const needle = filters.query.toLowerCase();
    const candidates = [
      p.installation.plugin_id,
      p.declaration.name,
      localized(p.declaration.label, filters.language),
      localized(p.declaration.description, filters.language),
    ];
    return candidates.some((text) => text.toLowerCase().includes(needle));
  }

  private async join(installation: Installation): Promise<InstalledPlugin | undefined> {
    const record = await this.packages.get(installation.plugin_unique_identifier);
    if (!record) return undefined;
    return { installation, declaration: record.declaration, verified: record.verified };
  }
}

/** upstream localizedPluginListText: the language's text, else en_US. */
function localized(text: unknown, language: string | undefined): string {
  const texts = (text ?? {}) as Record<string, unknown>;
  const field = language === "ja_JP" || language === "zh_Hans" || language === "pt_BR" ? language : "en_US";
  const value = texts[field];
  if (typeof value === "string" && value !== "") return value;
  return typeof texts.en_US === "string" ? texts.en_US : "";
}
