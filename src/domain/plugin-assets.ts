/**
 * Icons a declaration points at (files under `_assets/`) become content-addressed assets, and the
 * declaration's icon fields are rewritten to the asset ids Dify later fetches from
 * `GET /plugin/{tenant}/asset/{id}`. The id is `hex(sha256(content ‖ file name)) + extension`,
 * so the same icon in two versions of a plugin is stored once.
 */
import { createHash } from "node:crypto";
import type { FileReader } from "./declaration.js";
import { badRequest } from "./errors.js";
import type { PluginDeclaration } from "./manifest.js";

export interface PluginAsset {
  /** Asset id: `<sha256 hex><extension>`, e.g. `3f…9a.svg`. */
  id: string;
  /** The file's name relative to `_assets/`, as the declaration wrote it. */
  fileName: string;
  data: Uint8Array;
}

const ASSETS_DIR = "_assets/";

export function assetId(fileName: string, data: Uint8Array): string {
  const digest = createHash("sha256").update(data).update(fileName, "utf8").digest("hex");
  return digest + extensionOf(fileName);
}

/**
 * Returns a copy of the declaration with every icon rewritten to its asset id, plus the assets
 * (each file once, in the order first referenced). A referenced icon missing from the package
 * is the plugin's error, named by field.
 */
export function extractAssets(
  d: PluginDeclaration,
  read: FileReader,
): { declaration: PluginDeclaration; assets: PluginAsset[] } {
  const declaration = structuredClone(d);
  const byFile = new Map<string, PluginAsset>();

  const remap = (fileName: string, field: string): string => {
    const known = byFile.get(fileName);
    if (known) return known.id;
    const data = read(ASSETS_DIR + fileName);
    if (data === undefined) throw badRequest(`${field}: file ${ASSETS_DIR}${fileName} not found`);
    const asset = { id: assetId(fileName, data), fileName, data };
    byFile.set(fileName, asset);
    return asset.id;
  };
  /** Rewrites `holder[key]` when it names a file; `field` is how errors refer to it. */
  const remapField = (holder: Record<string, unknown>, key: string, field: string): void => {
    const value = holder[key];
    if (typeof value === "string" && value !== "") holder[key] = remap(value, field);
  };

  const { model, tool, agent_strategy, datasource, trigger } = declaration;
  if (model) {
    // Model provider icons are localized: one file per language.
    for (const key of ["icon_small", "icon_large", "icon_small_dark", "icon_large_dark"] as const) {
      const icons = model[key];
      if (icons) for (const language of Object.keys(icons)) remapField(icons, language, `model.${key}.${language}`);
    }
  }
  for (const [name, provider] of [
    ["tool", tool],
    ["agent_strategy", agent_strategy],
    ["datasource", datasource],
    ["trigger", trigger],
  ] as const) {
    if (!provider) continue;
    remapField(provider.identity, "icon", `${name}.identity.icon`);
    remapField(provider.identity, "icon_dark", `${name}.identity.icon_dark`);
  }
  datasource?.datasources.forEach((source, i) => {
    remapField(source.identity, "icon", `datasource.datasources[${i}].identity.icon`);
  });
  remapField(declaration, "icon", "icon");
  remapField(declaration, "icon_dark", "icon_dark");

  return { declaration, assets: [...byFile.values()] };
}

/** Go's filepath.Ext: from the last dot of the last path segment, or "" when it has none. */
function extensionOf(fileName: string): string {
  const base = fileName.slice(fileName.lastIndexOf("/") + 1);
  const dot = base.lastIndexOf(".");
  return dot < 0 ? "" : base.slice(dot);
}
