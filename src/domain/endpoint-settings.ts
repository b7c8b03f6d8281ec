/**
 * Endpoint settings against the endpoint declaration's `settings` schema: validation, secret
 * masking for listings, and the update rule that keeps a secret the UI sent back masked.
 * Each follows the upstream daemon (ValidateProviderConfigs, MaskConfigCredentials,
 * UpdateEndpoint) so Dify sees the same answers.
 */
import type { EndpointProviderDeclaration } from "./manifest.js";

export type SettingsSchema = EndpointProviderDeclaration["settings"];
export type Settings = Record<string, unknown>;

const SECRET_INPUT = "secret-input";
const MAX_FIELDS = 64;

const isMap = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** The first problem with `settings`, or undefined when they fit the schema. */
export function settingsProblem(settings: Settings, schema: SettingsSchema): string | undefined {
  if (Object.keys(settings).length > MAX_FIELDS) return "too many setting fields";
  for (const config of schema) {
    const name = config.name ?? "";
    const value = settings[name];
    const present = value !== undefined && value !== null;
    if (!present) {
      if (config.required) return `missing required setting: ${name}`;
      continue;
    }
    switch (config.type) {
      case "text-input":
      case "secret-input":
        if (typeof value !== "string") return `setting ${name} is not a string`;
        break;
      case "select":
        if (typeof value !== "string") return `setting ${name} is not a string`;
        if (!(config.options ?? []).some((o) => o.value === value)) return `setting ${name} is not a valid option`;
        break;
      case "boolean":
        if (typeof value !== "boolean") return `setting ${name} is not a boolean`;
        break;
      case "app-selector":
        if (!isMap(value)) return `setting ${name} is not a map`;
        if (!("app_id" in value)) return `setting ${name} is missing app_id`;
        break;
      case "model-selector": {
        if (!isMap(value)) return `setting ${name} is not a map`;
        for (const key of ["provider", "model", "model_type"])
          if (!(key in value)) return `setting ${name} is missing ${key}`;
        const needed = scopeKeys[config.scope ?? "all"];
        if (needed === undefined) return `setting ${name} is not a valid model config scope`;
        for (const key of needed) if (!(key in value)) return `setting ${name} is missing ${key}`;
        break;
      }
    }
  }
  return undefined;
}

/** Keys a model selector must carry per scope (upstream's model config scopes). */
const scopeKeys: Record<string, string[]> = {
  all: [],
  llm: [],
  "text-embedding": [],
  rerank: ["score_threshold", "top_n"],
  tts: ["voice"],
  speech2text: [],
  moderation: [],
  vision: ["completion_params"],
};

/** Whether the schema has secrets, i.e. whether Dify's encrypter has anything to do. */
export function hasSecrets(schema: SettingsSchema): boolean {
  return schema.some((c) => c.type === SECRET_INPUT);
}

const secretNames = (schema: SettingsSchema) =>
  new Set(schema.filter((c) => c.type === SECRET_INPUT).map((c) => c.name ?? ""));

/**
 * Secrets shown as their first and last two bytes around stars (all stars up to 6 bytes).
 * Go slices bytes, so multi-byte characters are cut the same way here.
 */
export function maskSettings(settings: Settings, schema: SettingsSchema): Settings {
  const secrets = secretNames(schema);
  const out: Settings = {};
  for (const [key, value] of Object.entries(settings)) {
    out[key] = secrets.has(key) && typeof value === "string" ? maskSecret(value) : value;
  }
  return out;
}

function maskSecret(value: string): string {
  const bytes = Buffer.from(value, "utf8");
  if (bytes.length <= 6) return "*".repeat(bytes.length);
  const head = bytes.subarray(0, 2).toString("utf8");
  const tail = bytes.subarray(bytes.length - 2).toString("utf8");
  return `${head}${"*".repeat(bytes.length - 4)}${tail}`;
}

/**
 * An update from the UI: a secret whose value equals the masked form of the stored one was not
 * changed by the user, so the stored value is kept. Everything else is taken as sent.
 */
export function mergeMaskedSecrets(incoming: Settings, stored: Settings, schema: SettingsSchema): Settings {
  const secrets = secretNames(schema);
  const masked = maskSettings(stored, schema);
  const out: Settings = { ...incoming };
  for (const [key, value] of Object.entries(incoming)) {
    if (secrets.has(key) && key in masked && masked[key] === value) out[key] = stored[key];
  }
  return out;
}
