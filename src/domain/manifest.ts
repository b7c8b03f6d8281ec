/**
 * The shapes of a plugin's declaration: `manifest.yaml`, the provider YAML files it references,
 * and the resolved `PluginDeclaration` JSON that Dify receives as `manifest` / `declaration`.
 *
 * Rules on manifest.yaml follow the upstream daemon's validator (version and name patterns,
 * `type: plugin`, en_US labels, arch, python runner, tag list, RFC 3339 `created_at`). Provider
 * files are checked for shape and for the identity fields Dify indexes on; upstream never
 * validates them beyond decoding, so enum-like strings there are not restricted. Every object is
 * loose: fields we do not model travel through untouched so nothing Dify reads is dropped.
 */
import { z } from "zod";
import { PARAMETER_TEMPLATES } from "./parameter-templates.js";

/**
 * A plain YAML scalar whose typed value would not print back as written (`3.10`, `1.0`, `0.60`).
 * String fields take the written text, as Go's YAML decoder does; any other field gets the value.
 */
export class YamlScalar {
  constructor(
    readonly source: string,
    readonly value: number | boolean,
  ) {}
  toString(): string {
    return this.source;
  }
}

const asText = (v: unknown): unknown =>
  v instanceof YamlScalar ? v.source : typeof v === "number" || typeof v === "boolean" ? String(v) : v;
const asValue = (v: unknown): unknown => (v instanceof YamlScalar ? v.value : v);
const YAML_BOOLEANS: Record<string, boolean> = { yes: true, on: true, no: false, off: false };
const asBoolean = (v: unknown): unknown => {
  const value = asValue(v);
  return typeof value === "string" && value.toLowerCase() in YAML_BOOLEANS ? YAML_BOOLEANS[value.toLowerCase()] : value;
};

/** A string field; numbers and booleans written unquoted become their written text. */
const text = (s: z.ZodString = z.string()) => z.preprocess(asText, s);
const num = (n: z.ZodNumber = z.number()) => z.preprocess(asValue, n);
const int = () => num(z.number().int());
const bool = z.preprocess(asBoolean, z.boolean());
const list = <T extends z.ZodType>(item: T) => z.array(item).default([]);
/** Free-form value (`default`, schema fragments): passed through as decoded. */
const anything = z.unknown();

// ---------------------------------------------------------------------------------------------
// Shared building blocks

export const VERSION_PATTERN = /^\d{1,4}(\.\d{1,4}){2}(-\w{1,16})?$/;
export const PLUGIN_NAME_PATTERN = /^[a-z0-9_-]{1,128}$/;
export const AUTHOR_PATTERN = /^[a-z0-9_-]{1,64}$/;
const IDENTITY_NAME_PATTERN = /^[a-zA-Z0-9_-]+$/;

export const PLUGIN_TAGS = [
  "search",
  "image",
  "videos",
  "weather",
  "finance",
  "design",
  "travel",
  "social",
  "news",
  "medical",
  "productivity",
  "education",
  "business",
  "entertainment",
  "utilities",
  "agent",
  "rag",
  "other",
  "trigger",
] as const;
export type PluginTag = (typeof PLUGIN_TAGS)[number];

const localized = text(z.string().max(1023));
/** A localized text as the manifest requires it: en_US present, every language under 1024 chars. */
export const i18nSchema = z.looseObject({
  en_US: text(z.string().min(1, "must not be empty").max(1023)),
  zh_Hans: localized.optional(),
  ja_JP: localized.optional(),
  pt_BR: localized.optional(),
});
/** A localized text in a provider file, where upstream accepts anything that decodes. */
const looseI18n = z.looseObject({ en_US: text().default("") });

const option = z.looseObject({ value: text(), label: looseI18n });

/** A credential / setting field (upstream ProviderConfig). */
const providerConfig = z.looseObject({
  name: text().optional(),
  type: text(),
  label: looseI18n.default({ en_US: "" }),
  required: bool.optional(),
  options: z.array(option).optional(),
  help: looseI18n.optional(),
  placeholder: looseI18n.optional(),
  url: text().optional(),
  scope: text().optional(),
});

/** Config lists may be written as a mapping keyed by field name; the key becomes `name`. */
const keyedAsNamed = (v: unknown): unknown =>
  isMapping(v) ? Object.entries(v).map(([name, config]) => (isMapping(config) ? { ...config, name } : config)) : v;
const providerConfigList = z.preprocess(keyedAsNamed, z.array(providerConfig)).default([]);

const oauthSchema = z.looseObject({
  client_schema: providerConfigList.optional(),
  credentials_schema: providerConfigList.optional(),
});

const parameter = z.looseObject({
  name: text(),
  label: looseI18n.default({ en_US: "" }),
  type: text(),
  options: z.array(option).optional(),
  min: num().optional(),
  max: num().optional(),
  precision: int().optional(),
  required: bool.optional(),
});

const identity = z.looseObject({
  author: text(),
  name: text(z.string().regex(IDENTITY_NAME_PATTERN, "must match ^[a-zA-Z0-9_-]+$")),
  label: looseI18n.default({ en_US: "" }),
});

const providerIdentity = identity.extend({
  description: looseI18n.optional(),
  icon: text(),
  icon_dark: text().optional(),
  tags: list(text()),
});

// ---------------------------------------------------------------------------------------------
// Tools

export const toolSchema = z.looseObject({
  identity,
  description: z.looseObject({ human: looseI18n.optional(), llm: text().optional() }).optional(),
  parameters: list(parameter.extend({ form: text().optional() })),
});

const toolProviderShape = {
  identity: providerIdentity,
  credentials_schema: providerConfigList,
  oauth_schema: oauthSchema.optional(),
};
/** `credentials_for_provider` is the older name of `credentials_schema`. */
const renameLegacyCredentials = (v: unknown): unknown => {
  if (!isMapping(v) || !("credentials_for_provider" in v)) return v;
  const { credentials_for_provider, ...rest } = v;
  const current = rest.credentials_schema;
  const empty = current === undefined || (Array.isArray(current) && current.length === 0);
  return empty ? { ...rest, credentials_schema: credentials_for_provider } : rest;
};
export const toolProviderSchema = z.preprocess(
  renameLegacyCredentials,
  z.looseObject({ ...toolProviderShape, tools: list(toolSchema) }),
);
/** A tool provider file: `tools` lists tool YAML paths (or, rarely, inline tools). */
export const toolProviderFileSchema = z.preprocess(
  renameLegacyCredentials,
  z.looseObject({ ...toolProviderShape, tools: list(z.union([text(), toolSchema])) }),
);

// ---------------------------------------------------------------------------------------------
// Models

const parameterRuleFields = z.looseObject({
  name: text(z.string().min(1).max(255)),
  use_template: text().optional(),
  label: looseI18n.optional(),
  type: text().optional(),
  help: looseI18n.optional(),
  required: bool.optional(),
  default: anything.optional(),
  min: num().optional(),
  max: num().optional(),
  precision: int().optional(),
  options: z.array(text()).optional(),
});
type ParameterRuleFields = z.output<typeof parameterRuleFields>;
type ParameterRule = ParameterRuleFields & { label: { en_US: string }; options: string[] };

/**
 * Applies a rule's template the way upstream does: the label defaults to the rule's name first
 * (so a template never supplies it), then the template fills whatever the rule leaves unset.
 */
export const parameterRuleSchema = parameterRuleFields.transform((rule, ctx): ParameterRule => {
  const label = rule.label && rule.label.en_US !== "" ? rule.label : { en_US: rule.name };
  let filled: ParameterRuleFields = { ...rule, label };
  if (rule.use_template) {
    const template = PARAMETER_TEMPLATES[rule.use_template];
    if (!template) {
      ctx.addIssue({ code: "custom", path: ["use_template"], message: `template "${rule.use_template}" not found` });
      return z.NEVER;
    }
    filled = { ...template, ...withoutUndefined(filled), name: rule.name };
  } else if (rule.type === undefined) {
    ctx.addIssue({ code: "custom", path: ["type"], message: "is required when use_template is not set" });
    return z.NEVER;
  }
  return { ...filled, label, required: filled.required ?? false, options: filled.options ?? [] };
});

/** Prices are decimals; upstream sends them as canonical decimal strings ("0.6", "0.000001"). */
const decimal = z.preprocess(
  (v) => (v instanceof YamlScalar ? v.source : typeof v === "number" ? String(v) : v),
  z.string().transform((s, ctx) => {
    const canonical = canonicalDecimal(s);
    if (canonical === undefined) {
      ctx.addIssue({ code: "custom", message: `"${s}" is not a decimal number` });
      return z.NEVER;
    }
    return canonical;
  }),
);

export const modelSchema = z
  .looseObject({
    model: text(z.string().min(1).max(255)),
    label: looseI18n.default({ en_US: "" }),
    model_type: text(),
    features: z.array(text()).optional(),
    fetch_from: text().default("predefined-model"),
    model_properties: z.record(z.string(), anything).optional(),
    deprecated: bool.optional(),
    parameter_rules: list(parameterRuleSchema),
    pricing: z.looseObject({ input: decimal, output: decimal.optional(), unit: decimal, currency: text() }).optional(),
  })
  // A model without an English label shows its id.
  .transform((m) => (m.label.en_US === "" ? { ...m, label: { ...m.label, en_US: m.model } } : m));

const formShowOn = z.looseObject({ variable: text(), value: text() });
const credentialFormSchema = z.looseObject({
  variable: text(z.string().min(1).max(255)),
  label: looseI18n.default({ en_US: "" }),
  type: text(),
  required: bool.optional(),
  default: text().optional(),
  options: list(z.looseObject({ label: looseI18n, value: text(), show_on: list(formShowOn) })),
  help: looseI18n.optional(),
  placeholder: looseI18n.optional(),
  max_length: int().optional(),
  show_on: list(formShowOn),
});

/** Model types that may name a `_position.yaml` file, keyed as in the provider YAML. */
export const MODEL_POSITION_TYPES = ["llm", "text_embedding", "rerank", "tts", "speech2text", "moderation"] as const;
export type ModelPositionType = (typeof MODEL_POSITION_TYPES)[number];

const iconSet = z.record(z.string(), text()).optional();

const modelProviderShape = {
  provider: text(z.string().min(1).max(255)),
  label: looseI18n.default({ en_US: "" }),
  description: looseI18n.optional(),
  icon_small: iconSet,
  icon_large: iconSet,
  icon_small_dark: iconSet,
  icon_large_dark: iconSet,
  background: text().optional(),
  supported_model_types: list(text()),
  configurate_methods: list(text()),
  provider_credential_schema: z.looseObject({ credential_form_schemas: list(credentialFormSchema) }).optional(),
  model_credential_schema: z
    .looseObject({
      model: z.looseObject({ label: looseI18n }).optional(),
      credential_form_schemas: list(credentialFormSchema),
    })
    .optional(),
};
export const modelProviderSchema = z.looseObject({
  ...modelProviderShape,
  position: z.partialRecord(z.enum(MODEL_POSITION_TYPES), z.array(text())).optional(),
  models: list(modelSchema),
});
/** Where a model type's predefined models and display order live: `{predefined: [glob], position}`. */
const modelFileSet = z.looseObject({ predefined: z.array(text()).optional(), position: text().optional() });
/** A model provider file: `models` maps model types to file globs (or, rarely, lists models inline). */
export const modelProviderFileSchema = z.looseObject({
  ...modelProviderShape,
  models: z.union([z.record(z.string(), z.union([modelFileSet, z.null()])), z.array(modelSchema)]).optional(),
});
export const modelPositionFileSchema = z.array(text());

// ---------------------------------------------------------------------------------------------
// Endpoints

export const endpointSchema = z.looseObject({
  path: text(z.string().min(1)),
  method: text(z.string().min(1)),
  hidden: bool.optional(),
});
const endpointProviderShape = { settings: providerConfigList };
export const endpointProviderSchema = z.looseObject({ ...endpointProviderShape, endpoints: list(endpointSchema) });
export const endpointProviderFileSchema = z.looseObject({
  ...endpointProviderShape,
  endpoints: list(z.union([text(), endpointSchema])),
});

// ---------------------------------------------------------------------------------------------
// Agent strategies

export const agentStrategySchema = z.looseObject({
  identity,
  description: looseI18n.optional(),
  parameters: list(parameter),
  features: list(text()),
});
const agentStrategyProviderShape = { identity: providerIdentity };
export const agentStrategyProviderSchema = z.looseObject({
  ...agentStrategyProviderShape,
  strategies: list(agentStrategySchema),
});
export const agentStrategyProviderFileSchema = z.looseObject({
  ...agentStrategyProviderShape,
  strategies: list(z.union([text(), agentStrategySchema])),
});

// ---------------------------------------------------------------------------------------------
// Datasources

export const datasourceSchema = z.looseObject({
  identity: identity.extend({ name: text(), icon: text().optional() }),
  description: looseI18n.optional(),
  parameters: list(parameter),
});
const datasourceProviderShape = {
  identity: providerIdentity.extend({ name: text(z.string().min(1)) }),
  credentials_schema: providerConfigList,
  oauth_schema: oauthSchema.optional(),
  provider_type: text(),
};
export const datasourceProviderSchema = z.looseObject({
  ...datasourceProviderShape,
  datasources: list(datasourceSchema),
});
export const datasourceProviderFileSchema = z.looseObject({
  ...datasourceProviderShape,
  datasources: list(z.union([text(), datasourceSchema])),
});

// ---------------------------------------------------------------------------------------------
// Triggers

const eventParameter = parameter.extend({
  options: z.array(z.looseObject({ label: looseI18n, value: anything })).optional(),
});
export const eventSchema = z.looseObject({
  identity,
  description: looseI18n.optional(),
  parameters: list(eventParameter),
});
const triggerProviderShape = {
  identity: providerIdentity,
  subscription_schema: providerConfigList,
  subscription_constructor: z
    .looseObject({
      parameters: list(eventParameter),
      credentials_schema: providerConfigList,
      oauth_schema: oauthSchema.optional(),
    })
    .optional(),
};
export const triggerProviderSchema = z.looseObject({ ...triggerProviderShape, events: list(eventSchema) });
export const triggerProviderFileSchema = z.looseObject({
  ...triggerProviderShape,
  events: list(z.union([text(), eventSchema])),
});

// ---------------------------------------------------------------------------------------------
// manifest.yaml

const enabled = bool.default(false);
const permissionSchema = z.looseObject({
  tool: z.looseObject({ enabled }).optional(),
  model: z
    .looseObject({
      enabled,
      llm: enabled,
      text_embedding: enabled,
      rerank: enabled,
      tts: enabled,
      speech2text: enabled,
      moderation: enabled,
    })
    .optional(),
  node: z.looseObject({ enabled }).optional(),
  endpoint: z.looseObject({ enabled }).optional(),
  app: z.looseObject({ enabled }).optional(),
  storage: z.looseObject({ enabled, size: int().pipe(z.number().min(1024).max(1073741824)).optional() }).optional(),
});

const fileList = z.array(text(z.string().max(128))).default([]);

export const manifestSchema = z.looseObject({
  version: text(z.string().regex(VERSION_PATTERN, "must be a version like 1.2.3")),
  type: z.literal("plugin", { error: 'expected "plugin"' }),
  author: text(z.string().regex(AUTHOR_PATTERN, "must match ^[a-z0-9_-]{1,64}$")),
  name: text(z.string().regex(PLUGIN_NAME_PATTERN, "must match ^[a-z0-9_-]{1,128}$")),
  label: i18nSchema,
  description: i18nSchema,
  icon: text(z.string().min(1).max(128)),
  icon_dark: text(z.string().max(128)).optional(),
  resource: z.looseObject({
    memory: int().pipe(z.number().positive("must be a positive number of bytes")),
    permission: permissionSchema.optional(),
  }),
  plugins: z.looseObject({
    tools: fileList,
    models: fileList,
    endpoints: fileList,
    agent_strategies: fileList,
    datasources: fileList,
    triggers: fileList,
  }),
  meta: z.looseObject({
    version: text(z.string().regex(VERSION_PATTERN, "must be a version like 0.0.1")),
    arch: z.array(z.enum(["amd64", "arm64"])),
    runner: z.looseObject({
      language: z.literal("python", { error: 'expected "python"' }),
      version: text(z.string().min(1).max(128)),
      entrypoint: text(z.string().min(1).max(256)),
    }),
    minimum_dify_version: text().optional(),
  }),
  tags: z.array(z.enum(PLUGIN_TAGS)).default([]),
  created_at: text().transform((s, ctx) => {
    const time = canonicalTimestamp(s);
    if (time === undefined) {
      ctx.addIssue({ code: "custom", message: "must be an RFC 3339 time" });
      return z.NEVER;
    }
    return time;
  }),
  privacy: text().optional(),
  repo: text(z.string().refine((s) => s === "" || URL.canParse(s), "must be a URL")).optional(),
});
export type Manifest = z.output<typeof manifestSchema>;

// ---------------------------------------------------------------------------------------------
// The resolved declaration

export const pluginDeclarationObjectSchema = manifestSchema.extend({
  verified: bool.default(false),
  tool: toolProviderSchema.optional(),
  model: modelProviderSchema.optional(),
  endpoint: endpointProviderSchema.optional(),
  agent_strategy: agentStrategyProviderSchema.optional(),
  datasource: datasourceProviderSchema.optional(),
  trigger: triggerProviderSchema.optional(),
});

export type PluginDeclaration = z.output<typeof pluginDeclarationObjectSchema>;
export type ToolProviderDeclaration = z.output<typeof toolProviderSchema>;
export type ToolDeclaration = z.output<typeof toolSchema>;
export type ModelProviderDeclaration = z.output<typeof modelProviderSchema>;
export type ModelDeclaration = z.output<typeof modelSchema>;
export type EndpointProviderDeclaration = z.output<typeof endpointProviderSchema>;
export type EndpointDeclaration = z.output<typeof endpointSchema>;
export type AgentStrategyProviderDeclaration = z.output<typeof agentStrategyProviderSchema>;
export type DatasourceProviderDeclaration = z.output<typeof datasourceProviderSchema>;
export type TriggerProviderDeclaration = z.output<typeof triggerProviderSchema>;
export type PluginCategory = "tool" | "model" | "extension" | "agent-strategy" | "datasource" | "trigger";

/** Validates a stored declaration; parsing the output of `loadDeclaration` gives it back unchanged. */
export const pluginDeclarationSchema: z.ZodType<PluginDeclaration> = pluginDeclarationObjectSchema;

// ---------------------------------------------------------------------------------------------
// Helpers

export function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof YamlScalar);
}

function withoutUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** "0.60" → "0.6", "1e-6" → "0.000001", "2.0" → "2"; undefined when not a decimal number. */
export function canonicalDecimal(input: string): string | undefined {
  const m = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(input.trim());
  if (!m || (m[2] === "" && (m[3] ?? "") === "")) return undefined;
  const negative = m[1] === "-";
  const fraction = m[3] ?? "";
  let digits = (m[2] ?? "") + fraction;
  let point = (m[2] ?? "").length + Number(m[4] ?? "0");
  if (point < 0) {
    digits = "0".repeat(-point) + digits;
    point = 0;
  }
  if (point > digits.length) digits += "0".repeat(point - digits.length);
  const whole = digits.slice(0, point).replace(/^0+/, "") || "0";
  const frac = digits.slice(point).replace(/0+$/, "");
  const body = frac === "" ? whole : `${whole}.${frac}`;
  return negative && body !== "0" ? `-${body}` : body;
}

/**
 * Accepts the timestamp forms Go's YAML decoder accepts (RFC 3339, `YYYY-M-D h:m:s`, a bare date)
 * and prints them as Go's JSON encoder does: fraction without trailing zeros, `Z` for UTC.
 */
export function canonicalTimestamp(input: string): string | undefined {
  const m =
    /^(\d{4})-(\d{1,2})-(\d{1,2})(?:[Tt ](\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d+))?\s*(Z|z|[+-]\d{2}:?\d{2})?)?$/.exec(
      input.trim(),
    );
  if (!m) return undefined;
  const [, y, mo, d, h = "0", mi = "0", s = "0", frac = "", zone = "Z"] = m;
  const pad = (v: string) => v.padStart(2, "0");
  const month = Number(mo);
  const day = Number(d);
  if (month < 1 || month > 12 || day < 1 || day > 31 || Number(h) > 23 || Number(mi) > 59 || Number(s) > 59) {
    return undefined;
  }
  const fraction = frac.slice(0, 9).replace(/0+$/, "");
  const offset = zone.toUpperCase() === "Z" ? "Z" : `${zone.slice(0, 3)}:${zone.slice(-2)}`;
  const zoneText = offset === "+00:00" || offset === "-00:00" ? "Z" : offset;
  return `${y}-${pad(mo!)}-${pad(d!)}T${pad(h)}:${pad(mi)}:${pad(s)}${fraction ? `.${fraction}` : ""}${zoneText}`;
}
