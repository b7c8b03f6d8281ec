/**
 * What a resolved declaration says about its plugin: the category Dify lists it under, its
 * provider names, runner, memory and permissions. Apart from declaration.ts, which builds a
 * declaration from package files, so that code reading stored declarations does not load the
 * YAML parser.
 */
import type { PluginCategory, PluginDeclaration } from "./manifest.js";

/** What Dify lists the plugin under; the first kind present wins. */
export function declarationCategory(d: PluginDeclaration): PluginCategory {
  if (d.tool || d.plugins.tools.length > 0) return "tool";
  if (d.model || d.plugins.models.length > 0) return "model";
  if (d.datasource || d.plugins.datasources.length > 0) return "datasource";
  if (d.agent_strategy || d.plugins.agent_strategies.length > 0) return "agent-strategy";
  if (d.trigger || d.plugins.triggers.length > 0) return "trigger";
  return "extension";
}

/** The provider name of each kind the plugin declares: what installation rows carry as `provider`. */
export function providerNames(d: PluginDeclaration): {
  tool?: string;
  model?: string;
  agent_strategy?: string;
  datasource?: string;
  trigger?: string;
  endpoint?: boolean;
} {
  return {
    ...(d.tool && { tool: d.tool.identity.name }),
    ...(d.model && { model: d.model.provider }),
    ...(d.agent_strategy && { agent_strategy: d.agent_strategy.identity.name }),
    ...(d.datasource && { datasource: d.datasource.identity.name }),
    ...(d.trigger && { trigger: d.trigger.identity.name }),
    ...(d.endpoint && { endpoint: true }),
  };
}

export function runnerOf(d: Pick<PluginDeclaration, "meta">): {
  language: "python";
  version: string;
  entrypoint: string;
} {
  const { language, version, entrypoint } = d.meta.runner;
  return { language, version, entrypoint };
}

export function memoryBytesOf(d: Pick<PluginDeclaration, "resource">): number {
  return d.resource.memory;
}

/**
 * The memory a plugin runs under: its manifest's resource.memory, raised to a floor. Real
 * manifests declare as little as 1 MiB (107 official plugins do) while the Python SDK alone needs
 * ~70 MiB and plugins with pandas or numpy idle at 150-250 MiB; the upstream daemon does not
 * enforce the figure locally at all. So the declaration is honoured only above the floor, and the
 * floor (one per runtime: the local daemon's is configurable, Lambda's buys CPU for a cold start)
 * is what stops a runaway plugin.
 */
export const DEFAULT_PLUGIN_MEMORY_FLOOR_BYTES = 1024 * 1024 * 1024;

export function memoryLimitBytesOf(
  d: Pick<PluginDeclaration, "resource">,
  floorBytes = DEFAULT_PLUGIN_MEMORY_FLOOR_BYTES,
): number {
  return Math.max(floorBytes, memoryBytesOf(d));
}

export interface PluginPermissions {
  tool: { enabled: boolean };
  model: {
    enabled: boolean;
    llm: boolean;
    text_embedding: boolean;
    rerank: boolean;
    tts: boolean;
    speech2text: boolean;
    moderation: boolean;
  };
  node: { enabled: boolean };
  endpoint: { enabled: boolean };
  app: { enabled: boolean };
  /** `size` in bytes; 0 when the manifest does not ask for storage. */
  storage: { enabled: boolean; size: number };
}

/**
 * The permissions the manifest asks for, everything absent disabled. Model sub-permissions are
 * effective values: a model type is only allowed when `model.enabled` is too, as upstream checks.
 */
export function permissionsOf(d: PluginDeclaration): PluginPermissions {
  const p = d.resource.permission;
  const modelEnabled = p?.model?.enabled ?? false;
  const modelType = (flag: boolean | undefined) => modelEnabled && (flag ?? false);
  return {
    tool: { enabled: p?.tool?.enabled ?? false },
    model: {
      enabled: modelEnabled,
      llm: modelType(p?.model?.llm),
      text_embedding: modelType(p?.model?.text_embedding),
      rerank: modelType(p?.model?.rerank),
      tts: modelType(p?.model?.tts),
      speech2text: modelType(p?.model?.speech2text),
      moderation: modelType(p?.model?.moderation),
    },
    node: { enabled: p?.node?.enabled ?? false },
    endpoint: { enabled: p?.endpoint?.enabled ?? false },
    app: { enabled: p?.app?.enabled ?? false },
    storage: { enabled: p?.storage?.enabled ?? false, size: p?.storage?.size ?? 0 },
  };
}
