/**
 * Builds a plugin's full declaration from its package files, as the upstream decoder does:
 * manifest.yaml names provider files under `plugins.*`; each provider file names its own children
 * (tool files, model globs and `_position.yaml` files, endpoint files, strategy files, datasource
 * files, event files). Errors name the file and the field at fault.
 */
import { parseDocument, visit } from "yaml";
import type { z } from "zod";
import { badRequest, internalError } from "./errors.js";
import {
  type AgentStrategyProviderDeclaration,
  agentStrategyProviderFileSchema,
  agentStrategySchema,
  type DatasourceProviderDeclaration,
  datasourceProviderFileSchema,
  datasourceSchema,
  type EndpointProviderDeclaration,
  endpointProviderFileSchema,
  endpointSchema,
  eventSchema,
  isMapping,
  type Manifest,
  MODEL_POSITION_TYPES,
  type ModelDeclaration,
  type ModelPositionType,
  type ModelProviderDeclaration,
  manifestSchema,
  modelPositionFileSchema,
  modelProviderFileSchema,
  modelSchema,
  type PluginDeclaration,
  type ToolProviderDeclaration,
  type TriggerProviderDeclaration,
  toolProviderFileSchema,
  toolSchema,
  triggerProviderFileSchema,
  YamlScalar,
} from "./manifest.js";

/** Reads one file of a plugin package by its path inside the package; undefined when absent. */
export type FileReader = (path: string) => Uint8Array | undefined;

export const MANIFEST_FILE = "manifest.yaml";

/**
 * Loads and resolves a plugin's declaration. `paths` lists every file in the package in archive
 * order; model providers need it to expand their `predefined` globs. `verified` is always false
 * here: the signature check belongs to whoever holds the archive.
 */
/**
 * The manifest alone, checked as in a whole declaration: what running an installed plugin needs
 * (its runner and resources), without reading every provider and model file.
 */
export function loadManifest(read: FileReader): Pick<PluginDeclaration, "meta" | "resource"> {
  return new PackageFiles(read, undefined).parse(MANIFEST_FILE, manifestSchema);
}

export function loadDeclaration(read: FileReader, paths?: Iterable<string>): PluginDeclaration {
  const files = new PackageFiles(read, paths === undefined ? undefined : [...paths]);
  const manifest = files.parse(MANIFEST_FILE, manifestSchema);
  checkExclusivity(manifest);

  const declaration: PluginDeclaration = { ...manifest, verified: false };
  const { plugins } = manifest;
  // Upstream keeps the last provider file of each kind; every listed file must still load.
  plugins.tools.forEach((path, i) => {
    declaration.tool = loadToolProvider(files, path, at(MANIFEST_FILE, `plugins.tools[${i}]`));
  });
  plugins.endpoints.forEach((path, i) => {
    declaration.endpoint = loadEndpointProvider(files, path, at(MANIFEST_FILE, `plugins.endpoints[${i}]`));
  });
  plugins.models.forEach((path, i) => {
    declaration.model = loadModelProvider(files, path, at(MANIFEST_FILE, `plugins.models[${i}]`));
  });
  plugins.agent_strategies.forEach((path, i) => {
    declaration.agent_strategy = loadAgentStrategyProvider(
      files,
      path,
      at(MANIFEST_FILE, `plugins.agent_strategies[${i}]`),
    );
  });
  plugins.datasources.forEach((path, i) => {
    declaration.datasource = loadDatasourceProvider(files, path, at(MANIFEST_FILE, `plugins.datasources[${i}]`));
  });
  plugins.triggers.forEach((path, i) => {
    declaration.trigger = loadTriggerProvider(files, path, at(MANIFEST_FILE, `plugins.triggers[${i}]`));
  });
  return writtenValues(fillInDefaults(declaration));
}

// ---------------------------------------------------------------------------------------------
// Provider exclusivity (upstream ManifestValidate)

type ProviderKind = "tools" | "models" | "endpoints" | "agent_strategies" | "datasources" | "triggers";
const PROVIDER_KINDS: readonly ProviderKind[] = [
  "tools",
  "models",
  "endpoints",
  "agent_strategies",
  "datasources",
  "triggers",
];
/** Kinds that must be a plugin's only kind; only tools and endpoints may share a plugin. */
const EXCLUSIVE_KINDS: readonly ProviderKind[] = ["models", "agent_strategies", "datasources", "triggers"];

function checkExclusivity(manifest: Manifest): void {
  const declared = PROVIDER_KINDS.filter((kind) => manifest.plugins[kind].length > 0);
  if (declared.length === 0) {
    throw badRequest(`${MANIFEST_FILE}: plugins: declare at least one of ${PROVIDER_KINDS.join(", ")}`);
  }
  for (const kind of EXCLUSIVE_KINDS) {
    const others = declared.filter((k) => k !== kind);
    if (declared.includes(kind) && others.length > 0) {
      throw badRequest(`${MANIFEST_FILE}: plugins: ${kind} cannot be combined with ${others.join(", ")}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Provider loaders

function loadToolProvider(files: PackageFiles, path: string, from: Reference): ToolProviderDeclaration {
  const provider = files.parse(path, toolProviderFileSchema, from);
  return { ...provider, tools: children(files, path, "tools", provider.tools, toolSchema) };
}

function loadEndpointProvider(files: PackageFiles, path: string, from: Reference): EndpointProviderDeclaration {
  const provider = files.parse(path, endpointProviderFileSchema, from);
  return { ...provider, endpoints: children(files, path, "endpoints", provider.endpoints, endpointSchema) };
}

function loadAgentStrategyProvider(
  files: PackageFiles,
  path: string,
  from: Reference,
): AgentStrategyProviderDeclaration {
  const provider = files.parse(path, agentStrategyProviderFileSchema, from);
  return { ...provider, strategies: children(files, path, "strategies", provider.strategies, agentStrategySchema) };
}

function loadDatasourceProvider(files: PackageFiles, path: string, from: Reference): DatasourceProviderDeclaration {
  const provider = files.parse(path, datasourceProviderFileSchema, from);
  return { ...provider, datasources: children(files, path, "datasources", provider.datasources, datasourceSchema) };
}

function loadTriggerProvider(files: PackageFiles, path: string, from: Reference): TriggerProviderDeclaration {
  const provider = files.parse(path, triggerProviderFileSchema, from);
  return { ...provider, events: children(files, path, "events", provider.events, eventSchema) };
}

/**
 * A provider's `models` is usually a mapping from model type to `{predefined: [glob], position}`.
 * Globs are matched against every package file except `_position.yaml` files, in archive order;
 * only the six types that have position files are read, as upstream does.
 */
function loadModelProvider(files: PackageFiles, path: string, from: Reference): ModelProviderDeclaration {
  const { models: declared, ...provider } = files.parse(path, modelProviderFileSchema, from);
  if (declared === undefined) return { ...provider, models: [] };
  if (Array.isArray(declared)) return { ...provider, models: declared };

  const position: Partial<Record<ModelPositionType, string[]>> = {};
  const patterns: string[] = [];
  for (const [type, set] of Object.entries(declared)) {
    if (!isModelPositionType(type) || set === null) continue;
    if (set.position !== undefined) {
      position[type] = files.parse(set.position, modelPositionFileSchema, at(path, `models.${type}.position`));
    }
    patterns.push(...(set.predefined ?? []));
  }

  const models: ModelDeclaration[] = [];
  if (patterns.length > 0) {
    const matchers = patterns.map(globMatcher);
    for (const file of files.listForGlobs(path)) {
      if (file.endsWith("/") || file.endsWith("_position.yaml")) continue;
      for (const matches of matchers) {
        if (matches(file)) models.push(files.parse(file, modelSchema, at(path, "models")));
      }
    }
  }
  return { ...provider, position, models };
}

function isModelPositionType(type: string): type is ModelPositionType {
  return (MODEL_POSITION_TYPES as readonly string[]).includes(type);
}

/** Inline children come first, then those read from the listed files, as upstream appends them. */
function children<T>(
  files: PackageFiles,
  ownerPath: string,
  field: string,
  entries: readonly (string | T)[],
  schema: z.ZodType<T>,
): T[] {
  const inline = entries.filter((e): e is T => typeof e !== "string");
  const loaded = entries.flatMap((e, i) =>
    typeof e === "string" ? [files.parse(e, schema, at(ownerPath, `${field}[${i}]`))] : [],
  );
  return [...inline, ...loaded];
}

/**
 * Go's filepath.Match: `*` and `?` stay within one path segment, `[...]` is a character class,
 * `\` escapes. The whole path must match.
 */
export function globMatcher(pattern: string): (path: string) => boolean {
  let source = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "*") source += "[^/]*";
    else if (c === "?") source += "[^/]";
    else if (c === "\\" && i + 1 < pattern.length) source += escapeRegExp(pattern[++i]!);
    else if (c === "[") {
      const end = pattern.indexOf("]", i + 2);
      if (end < 0) return () => false;
      let body = pattern.slice(i + 1, end);
      const negated = body.startsWith("^");
      if (negated) body = body.slice(1);
      source += `${negated ? "[^/" : "["}${body.replace(/[\\\]]/g, "\\$&")}]`;
      i = end;
    } else source += escapeRegExp(c);
  }
  const re = new RegExp(`^${source}$`);
  return (path) => re.test(path);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

// ---------------------------------------------------------------------------------------------
// Defaults upstream applies when it serves a declaration (FillInDefaultValues)

function fillInDefaults(d: PluginDeclaration): PluginDeclaration {
  const out = { ...d };
  if (out.tool) {
    out.tool = { ...out.tool, identity: withPluginDescriptionAndTags(out.tool.identity, d) };
  }
  if (out.trigger) {
    out.trigger = { ...out.trigger, identity: withPluginDescriptionAndTags(out.trigger.identity, d) };
  }
  if (out.model && out.model.description === undefined) {
    out.model = { ...out.model, description: { ...d.description } };
  }
  return out;
}

function withPluginDescriptionAndTags<I extends { description?: { en_US: string } | undefined; tags: string[] }>(
  identity: I,
  d: PluginDeclaration,
): I {
  const description =
    !identity.description || identity.description.en_US === "" ? { ...d.description } : identity.description;
  const tags = identity.tags.length === 0 ? [...d.tags] : identity.tags;
  return { ...identity, description, tags };
}

// ---------------------------------------------------------------------------------------------
// Reading and parsing package files

interface Reference {
  file: string;
  field: string;
}
const at = (file: string, field: string): Reference => ({ file, field });

class PackageFiles {
  constructor(
    private readonly read: FileReader,
    private readonly paths: readonly string[] | undefined,
  ) {}

  /** Reads a YAML file and checks it against `schema`; `from` says who referenced it. */
  parse<S extends z.ZodType>(path: string, schema: S, from?: Reference): z.output<S> {
    const bytes = this.read(normalizePath(path));
    if (bytes === undefined) {
      throw badRequest(from ? `${from.file}: ${from.field}: file ${path} not found` : `${path} not found`);
    }
    const result = schema.safeParse(parseYaml(path, bytes));
    if (!result.success) throw badRequest(`${path}: ${describeIssues(result.error)}`);
    return result.data;
  }

  listForGlobs(owner: string): readonly string[] {
    if (this.paths === undefined) {
      // A programming error, not the plugin's: the caller must pass the archive's file list.
      throw internalError(`${owner}: model file patterns need the package's file list`);
    }
    return this.paths;
  }
}

/** Package paths are relative to the archive root; tolerate a leading "./". */
function normalizePath(path: string): string {
  return path.replace(/^(\.\/)+/, "");
}

function parseYaml(path: string, bytes: Uint8Array): unknown {
  const source = new TextDecoder("utf-8").decode(bytes);
  const doc = parseDocument(source, { merge: true, uniqueKeys: false });
  const [error] = doc.errors;
  if (error) throw badRequest(`${path}: invalid YAML: ${error.message.split("\n")[0]!.replace(/:$/, "")}`);
  visit(doc, {
    Scalar(key, node) {
      if (key === "key" || node.type !== "PLAIN") return;
      const { value, source: written } = node as { value: unknown; source?: string };
      if (
        (typeof value === "number" || typeof value === "boolean") &&
        written !== undefined &&
        String(value) !== written
      ) {
        node.value = new YamlScalar(written, value);
      }
    },
  });
  return withoutNullFields(doc.toJS({ maxAliasCount: 1000 }));
}

/** A field written as null reads as absent, as it does for Go's typed decoder. */
function withoutNullFields(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutNullFields);
  if (!isMapping(value)) return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([, v]) => v !== null)
      .map(([k, v]) => [k, withoutNullFields(v)]),
  );
}

/** Free-form fields keep the value a scalar was decoded to; only string fields take its text. */
function writtenValues<T>(value: T): T {
  if (value instanceof YamlScalar) return value.value as T;
  if (Array.isArray(value)) return value.map(writtenValues) as T;
  if (!isMapping(value)) return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, writtenValues(v)])) as T;
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((issue) => {
      const where = formatPath(issue.path);
      const message = issueMessage(issue);
      return where === "" ? message : `${where}: ${message}`;
    })
    .join("; ");
}

function issueMessage(issue: z.core.$ZodIssue): string {
  if (issue.message.endsWith("received undefined")) return "is required";
  return issue.message.replace(/^Invalid (input|option): /, "");
}

function formatPath(path: readonly PropertyKey[]): string {
  return path
    .map((key, i) => (typeof key === "number" ? `[${key}]` : i === 0 ? String(key) : `.${String(key)}`))
    .join("");
}
