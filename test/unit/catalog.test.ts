/**
 * The catalog's queries over a tenant's installations, on in-memory stand-ins for the stores:
 * missing installations, model bindings, category ids, tool existence and the category search.
 */
import { describe, expect, it } from "vitest";
import { type PluginUniqueIdentifier, uniqueIdentifier } from "../../src/domain/identifier.js";
import type { PluginDeclaration } from "../../src/domain/manifest.js";
import { Catalog } from "../../src/services/catalog.js";
import type { Installation, Installations } from "../../src/stores/installations.js";
import type { PackageRecords } from "../../src/stores/package-records.js";

const SUM = "f47ca91dfa51d374e6dc4fa3b9b6839396e1e5bff0d6e846cc940c828f8f131b";
const T = "tenant-1";

const uid = (pluginId: string, version: string) => uniqueIdentifier(`${pluginId}:${version}@${SUM}`);

function installation(pluginId: string, version: string): Installation {
  return {
    id: `inst-${pluginId}`,
    tenant_id: T,
    plugin_id: pluginId,
    plugin_unique_identifier: uid(pluginId, version),
    runtime_type: "local",
    source: "package",
    meta: {},
    endpoints_setups: 0,
    endpoints_active: 0,
    created_at: "2026-01-01T00:00:00Z",
    updated_at: "2026-01-01T00:00:00Z",
  };
}

/** A catalog over the given installations, each with its declaration. */
function catalogOf(plugins: Array<{ installation: Installation; declaration: Partial<PluginDeclaration> }>) {
  const byId = new Map(plugins.map((p) => [p.installation.plugin_id, p]));
  const byUid = new Map(plugins.map((p) => [p.installation.plugin_unique_identifier, p]));
  const installations = {
    list: async () => plugins.map((p) => p.installation),
    get: async (_t: string, pluginId: string) => {
      const p = byId.get(pluginId);
      return p && { installation: p.installation, version: 1 };
    },
  } as unknown as Installations;
  const packages = {
    get: async (u: PluginUniqueIdentifier) => {
      const p = byUid.get(u);
      return p && { declaration: p.declaration, verified: true };
    },
    users: async (u: PluginUniqueIdentifier) => (byUid.has(u) ? [T] : []),
  } as unknown as PackageRecords;
  return new Catalog(installations, packages);
}

/** The declaration's `plugins` lists, empty: the kind is in its provider field. */
const plugins = { tools: [], models: [], datasources: [], agent_strategies: [], triggers: [], endpoints: [] };
const tool = (name: string): Partial<PluginDeclaration> =>
  ({
    name,
    label: { en_US: `The ${name}` },
    description: { en_US: "Searches the web" },
    tags: ["search"],
    plugins,
    tool: { identity: { name: `${name}-provider` } },
  }) as unknown as Partial<PluginDeclaration>;
const model = (name: string): Partial<PluginDeclaration> =>
  ({
    name,
    label: { en_US: name },
    description: { en_US: "" },
    plugins,
    model: { provider: `${name}-models` },
  }) as unknown as Partial<PluginDeclaration>;

const catalog = catalogOf([
  { installation: installation("acme/search", "0.1.0"), declaration: tool("search") },
  { installation: installation("acme/llm", "1.2.3"), declaration: model("llm") },
]);

describe("Catalog", () => {
  it("names the identifiers the tenant lacks, with the version it has instead", async () => {
    expect(
      await catalog.missing(T, [uid("acme/search", "0.1.0"), uid("acme/llm", "2.0.0"), uid("acme/other", "1.0.0")]),
    ).toEqual([
      { plugin_unique_identifier: uid("acme/llm", "2.0.0"), current_identifier: uid("acme/llm", "1.2.3") },
      { plugin_unique_identifier: uid("acme/other", "1.0.0"), current_identifier: "" },
    ]);
  });

  it("binds each model provider to its installation and version", async () => {
    expect(await catalog.modelBindings(T)).toEqual([
      {
        provider: "llm-models",
        installation_id: "inst-acme/llm",
        plugin_id: "acme/llm",
        plugin_unique_identifier: uid("acme/llm", "1.2.3"),
        runtime_type: "local",
        source: "package",
        version: "1.2.3",
        verified: true,
      },
    ]);
  });

  it("lists plugin ids by the provider they declare", async () => {
    expect(await catalog.pluginIds(T, "tool")).toEqual(["acme/search"]);
    expect(await catalog.pluginIds(T, "model")).toEqual(["acme/llm"]);
    expect(await catalog.pluginIds(T, "trigger")).toEqual([]);
  });

  it("answers tool existence per plugin and provider name", async () => {
    expect(
      await catalog.toolsExist(T, [
        { plugin_id: "acme/search", provider_name: "search-provider" },
        { plugin_id: "acme/search", provider_name: "other" },
        { plugin_id: "acme/llm", provider_name: "llm-models" },
        { plugin_id: "acme/none", provider_name: "x" },
      ]),
    ).toEqual([true, false, false, false]);
  });

  it("finds one provider of a kind, and none for a kind the plugin does not declare", async () => {
    expect((await catalog.provider(T, "acme/search", "tool"))?.provider).toBe("search-provider");
    expect(await catalog.provider(T, "acme/search", "model")).toBeUndefined();
    expect(await catalog.provider(T, "acme/none", "tool")).toBeUndefined();
    expect((await catalog.providers(T, "model")).map((r) => r.provider)).toEqual(["llm-models"]);
  });

  it("searches a category by tag and text", async () => {
    const ids = async (filters: Parameters<Catalog["search"]>[2]) =>
      (await catalog.search(T, "tool", filters)).map((p) => p.installation.plugin_id);
    expect(await ids({ tags: [] })).toEqual(["acme/search"]);
    expect(await ids({ tags: ["search"], query: "WEB" })).toEqual(["acme/search"]);
    expect(await ids({ tags: ["image"] })).toEqual([]);
    expect((await catalog.search(T, "model", { tags: [] })).map((p) => p.installation.plugin_id)).toEqual(["acme/llm"]);
  });

  it("keeps the order of a batch and leaves out plugins not installed", async () => {
    const found = await catalog.installedPlugins(T, ["acme/llm", "acme/none", "acme/search"]);
    expect(found.map((p) => p.installation.plugin_id)).toEqual(["acme/llm", "acme/search"]);
    expect(await catalog.installedAnywhere(uid("acme/llm", "1.2.3"))).toBe(true);
    expect(await catalog.installedAnywhere(uid("acme/llm", "9.9.9"))).toBe(false);
  });
});
