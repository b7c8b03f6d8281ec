/**
 * Plugin unique identifiers: `[author/]name:version@checksum`, as upstream validates them
 * (pkg/entities/plugin_entities/identity.go). The identifier names one exact package; the
 * `plugin_id` (`author/name`) names the plugin across versions.
 *
 * An identifier is checked once, where it enters (a request's schema, a record read back, a
 * marketplace answer, a package's declaration) and travels as `PluginUniqueIdentifier`: the
 * plain string, byte for byte, whose type says it was checked. Code that holds one reads its
 * parts with `identifierParts` and never validates it again.
 */
import { z } from "zod";
import { identifierError } from "./errors.js";

declare const checked: unique symbol;

/** A string that matched the identifier grammar. Only this module's checks produce one. */
export type PluginUniqueIdentifier = string & { readonly [checked]: "PluginUniqueIdentifier" };

export interface UniqueIdentifier {
  raw: PluginUniqueIdentifier;
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

/** The check; as a type guard it also types what passed (zod's `refine` narrows with it). */
export function isUniqueIdentifier(raw: string): raw is PluginUniqueIdentifier {
  return IDENTIFIER.test(raw);
}

/** Checks `raw`; throws PluginUniqueIdentifierError with upstream's message when it is not valid. */
export function uniqueIdentifier(raw: string): PluginUniqueIdentifier {
  if (!isUniqueIdentifier(raw)) throw identifierError(`plugin_unique_identifier is not valid: ${raw}`);
  return raw;
}

/** Checks `raw` and splits it; throws like `uniqueIdentifier`. */
export function parseUniqueIdentifier(raw: string): UniqueIdentifier {
  return identifierParts(uniqueIdentifier(raw));
}

/**
 * The parts of a checked identifier. The grammar allows exactly one `:` and one `@`, and a `/`
 * only before the `:`, so the parts are read off at those positions without checking again.
 */
export function identifierParts(id: PluginUniqueIdentifier): UniqueIdentifier {
  const colon = id.indexOf(":");
  const at = id.indexOf("@", colon);
  const pluginId = id.slice(0, colon);
  const slash = pluginId.indexOf("/");
  return {
    raw: id,
    author: slash < 0 ? undefined : pluginId.slice(0, slash),
    name: pluginId.slice(slash + 1),
    version: id.slice(colon + 1, at),
    checksum: id.slice(at + 1),
    pluginId,
  };
}

/** A request or record field that holds an identifier: checked, and typed as checked. */
export const uniqueIdentifierSchema = z
  .string()
  .refine(isUniqueIdentifier, { message: "plugin_unique_identifier is not valid" });

/** Builds `[author/]name:version@checksum`; throws if the parts do not form a valid identifier. */
export function formatUniqueIdentifier(p: {
  author?: string;
  name: string;
  version: string;
  checksum: string;
}): PluginUniqueIdentifier {
  const prefix = p.author ? `${p.author}/${p.name}` : p.name;
  return uniqueIdentifier(`${prefix}:${p.version}@${p.checksum}`);
}

/** A remote-debugging plugin: its author is the tenant id, a UUID. */
export function isRemoteLike(id: PluginUniqueIdentifier): boolean {
  const { author } = identifierParts(id);
  return author !== undefined && UUID.test(author);
}

/**
 * Everything before the `:` (upstream's PluginID(); the whole string if there is not exactly one).
 * For any string, checked or not, as upstream applies it; for a checked one it is its plugin id.
 */
export function pluginIdOf(raw: string): string {
  const parts = raw.split(":");
  return parts.length === 2 ? parts[0]! : raw;
}
