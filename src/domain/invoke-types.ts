/**
 * The backwards invocations a plugin can make (its `invoke` messages' `type`): where each goes in
 * Dify's inner API, whether Dify streams the answer, and the manifest permission that gates it
 * with upstream's refusal text (internal/core/io_tunnel/backwards_invocation/task.go).
 */

/** Paths under /inner/api (Dify: api/controllers/inner_api/plugin/plugin.py). */
export type InnerApiPath =
  | "invoke/llm"
  | "invoke/llm/structured-output"
  | "invoke/text-embedding"
  | "invoke/multimodal-embedding"
  | "invoke/rerank"
  | "invoke/multimodal-rerank"
  | "invoke/tts"
  | "invoke/speech2text"
  | "invoke/moderation"
  | "invoke/tool"
  | "invoke/app"
  | "invoke/parameter-extractor"
  | "invoke/question-classifier"
  | "invoke/encrypt"
  | "invoke/summary"
  | "upload/file/request"
  | "fetch/app/info";

import type { PluginPermissions } from "./declaration-facts.js";

export interface InvokeTypeRule {
  /** Undefined for `storage`, which the daemon serves itself. */
  path?: InnerApiPath;
  /** Streamed answers are relayed as `stream` responses, single ones as one `struct`. */
  streamed: boolean;
  /** How upstream names the call in its failure messages ("invoke <what> failed: ..."). */
  failure: string;
  allowed: (p: PluginPermissions) => boolean;
  denied: string;
  /** Dify nests this answer once more (`{data: {data: ...}}`); upstream hands the plugin the inner one. */
  nested?: boolean;
  /**
   * The request as upstream forwards it after decoding it into its typed struct, where that
   * matters to Dify: a null the SDK allows becomes the field's zero value.
   */
  normalize?: (request: Record<string, unknown>) => Record<string, unknown>;
}

function withParameterZeroValues(parameter: unknown): unknown {
  if (!parameter || typeof parameter !== "object") return parameter;
  const p = parameter as Record<string, unknown>;
  return { ...p, description: p.description ?? "", required: p.required ?? false };
}

const denied = (what: string) => `permission denied, you need to enable ${what} access in plugin manifest`;

export const invokeTypes: Record<string, InvokeTypeRule> = {
  tool: {
    path: "invoke/tool",
    streamed: true,
    failure: "invoke tool failed",
    allowed: (p) => p.tool.enabled,
    denied: denied("tool"),
  },
  llm: {
    path: "invoke/llm",
    streamed: true,
    failure: "invoke llm model failed",
    allowed: (p) => p.model.llm,
    denied: denied("llm"),
  },
  llm_structured_output: {
    path: "invoke/llm/structured-output",
    streamed: true,
    failure: "invoke llm with structured output model failed",
    allowed: (p) => p.model.llm,
    denied: denied("llm"),
  },
  text_embedding: {
    path: "invoke/text-embedding",
    streamed: false,
    failure: "invoke text-embedding model failed",
    allowed: (p) => p.model.text_embedding,
    denied: denied("text-embedding"),
  },
  multimodal_embedding: {
    path: "invoke/multimodal-embedding",
    streamed: false,
    failure: "invoke multimodal embedding model failed",
    allowed: (p) => p.model.text_embedding,
    denied: denied("text-embedding"),
  },
  rerank: {
    path: "invoke/rerank",
    streamed: false,
    failure: "invoke rerank model failed",
    allowed: (p) => p.model.rerank,
    denied: denied("rerank"),
  },
  multimodal_rerank: {
    path: "invoke/multimodal-rerank",
    streamed: false,
    failure: "invoke multimodal rerank model failed",
    allowed: (p) => p.model.rerank,
    denied: denied("rerank"),
  },
  tts: {
    path: "invoke/tts",
    streamed: true,
    failure: "invoke tts model failed",
    allowed: (p) => p.model.tts,
    denied: denied("tts"),
  },
  speech2text: {
    path: "invoke/speech2text",
    streamed: false,
    failure: "invoke speech2text model failed",
    allowed: (p) => p.model.speech2text,
    denied: denied("speech2text"),
  },
  moderation: {
    path: "invoke/moderation",
    streamed: false,
    failure: "invoke moderation model failed",
    allowed: (p) => p.model.moderation,
    denied: denied("moderation"),
  },
  node_parameter_extractor: {
    path: "invoke/parameter-extractor",
    streamed: false,
    failure: "invoke parameter extractor failed",
    allowed: (p) => p.node.enabled,
    denied: denied("node"),
    // The SDK's ParameterConfig allows description and required to be None; Dify's requires a
    // string and a bool, which upstream's Go struct supplies ("" and false).
    normalize: (request) => ({
      ...request,
      parameters: Array.isArray(request.parameters)
        ? request.parameters.map(withParameterZeroValues)
        : request.parameters,
    }),
  },
  node_question_classifier: {
    path: "invoke/question-classifier",
    streamed: false,
    failure: "invoke question classifier failed",
    allowed: (p) => p.node.enabled,
    denied: denied("node"),
  },
  app: {
    path: "invoke/app",
    streamed: true,
    failure: "invoke app failed",
    allowed: (p) => p.app.enabled,
    denied: denied("app"),
  },
  storage: { streamed: false, failure: "storage failed", allowed: (p) => p.storage.enabled, denied: denied("storage") },
  system_summary: {
    path: "invoke/summary",
    streamed: false,
    failure: "invoke summary failed",
    allowed: (p) => p.model.llm,
    denied: denied("llm"),
  },
  // Upstream lets every plugin ask for an upload URL.
  upload_file: {
    path: "upload/file/request",
    streamed: false,
    failure: "upload file failed",
    allowed: () => true,
    denied: denied("storage"),
  },
  fetch_app: {
    path: "fetch/app/info",
    streamed: false,
    failure: "fetch app failed",
    allowed: (p) => p.app.enabled,
    denied: denied("app"),
    nested: true,
  },
};

export const ruleFor = (type: string): InvokeTypeRule | undefined =>
  Object.hasOwn(invokeTypes, type) ? invokeTypes[type] : undefined;
