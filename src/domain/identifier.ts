/**
 * Plugin unique identifiers: `[author/]name:version@checksum`, as upstream validates them
 * (pkg/entities/plugin_entities/identity.go). The identifier names one exact package; the
 * `plugin_id` (`author/name`) names the plugin across versions.
 */
import { identifierError } from "./errors.js";

export interface UniqueIdentifier {
  raw: string;
  author: string | undefined;
  name: string;
  version: string;
  checksum: string;
  pluginId: string;
}

// Same grammar as upstream: optional author, 2–4 numeric version parts with an optional
// `-suffix`, and a 32–64 hex checksum. JS `\w` is ASCII-only, like Go's RE2.
const IDENTIFIER =
  /^(?:([a-z0-9_-]{1,64})\/)?([a-z0-9_-]{1,255}):([0-9]{1,4}(?:\.[0-9]{1,4}){1,3}(?:-\w{1,16})?)@([a-f0-9]{32,64})$/;

// The forms Go's uuid.Parse accepts that the author grammar can contain: dashed or bare hex.
const UUID = /^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32})$/i;

export function isUniqueIdentifier(raw: string): boolean {
  return IDENTIFIER.test(raw);
}

/** Throws PluginUniqueIdentifierError with upstream's message when `raw` is not valid. */
export function parseUniqueIdentifier(raw: string): UniqueIdentifier {
  const match = IDENTIFIER.exec(raw);
  if (!match) throw identifierError(`plugin_unique_identifier is not valid: ${raw}`);
  const [, author, name, version, checksum] = match as unknown as [string, string | undefined, string, string, string];
  return { raw, author, name, version, checksum, pluginId: pluginIdOf(raw) };
}

/** Builds `[author/]name:version@checksum`; throws if the parts do not form a valid identifier. */
export function formatUniqueIdentifier(p: {
  author?: string;
  name: string;
  version: string;
  checksum: string;
}): string {
  const prefix = p.author ? `${p.author}/${p.name}` : p.name;
  return parseUniqueIdentifier(`${prefix}:${p.version}@${p.checksum}`).raw;
}

/** A remote-debugging plugin: its author is the tenant id, a UUID. */
export function isRemoteLike(id: UniqueIdentifier): boolean {
  return id.author !== undefined && UUID.test(id.author);
}

/** Everything before the `:` (upstream's PluginID(); the whole string if there is not exactly one). */
export function pluginIdOf(raw: string): string {
  const parts = raw.split(":");
  return parts.length === 2 ? parts[0]! : raw;
}
