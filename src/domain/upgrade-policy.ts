/**
 * The auto-upgrade policy: which installed plugins a tenant's strategy upgrades, and to what.
 * Pure: no I/O, no clock, no AWS. The strategy itself and the schedule (which tenants are due
 * when) are in upgrade-strategy.ts.
 *
 * Strategy fields and values are Dify's (`TenantPluginAutoUpgradeStrategy`); the version rules are
 * stricter than Dify's own check, on purpose (docs/auto-upgrade.md, "Differences from Dify"):
 * - `latest` upgrades to any *newer* version (Dify upgrades on any difference, even to an older one);
 * - `fix_only` upgrades to a newer version with the same major.minor;
 * - never to an older or equal version, never to a pre-release unless the installed one is one;
 * - versions follow the plugin identifier grammar (2–4 numeric parts, optional `-suffix`) and are
 *   compared with semver after a careful coercion (see `parsePluginVersion`).
 */
import semver from "semver";
import { identifierParts, isUniqueIdentifier, type PluginUniqueIdentifier } from "./identifier.js";
import type { UpgradeStrategy } from "./upgrade-strategy.js";

// ---------------------------------------------------------------------------------------------
// Versions

export interface PluginVersion {
  raw: string;
  /** The coerced semver used for comparison. */
  semver: semver.SemVer;
  prerelease: boolean;
}

// The version part of a plugin unique identifier: 2–4 numeric parts of 1–4 digits, optional -suffix.
const VERSION = /^(\d{1,4})\.(\d{1,4})(?:\.(\d{1,4}))?(?:\.(\d{1,4}))?(?:-(\w{1,16}))?$/;

/**
 * Coerces a plugin version into semver, keeping its order:
 * - `1.2` is `1.2.0`;
 * - a fourth part refines the patch: `a.b.c.d` → `a.b.(c*10000+d)` (parts have at most 4 digits,
 *   so `1.2.3.9999 < 1.2.4` and `1.2.3 = 1.2.3.0`);
 * - leading zeros are dropped (`01.2.3` is `1.2.3`);
 * - the suffix is a pre-release; `_` separates its identifiers (`beta_2` → `beta.2`, so
 *   `beta_2 < beta_10`), numeric identifiers lose leading zeros.
 * Anything outside the identifier grammar is undefined: such a version is never upgraded from or to.
 */
export function parsePluginVersion(raw: string): PluginVersion | undefined {
  const m = VERSION.exec(raw);
  if (!m) return undefined;
  const [major, minor, patch, fourth] = [m[1], m[2], m[3], m[4]].map((p) => Number(p ?? "0")) as [
    number,
    number,
    number,
    number,
  ];
  let text = `${major}.${minor}.${patch * 10_000 + fourth}`;
  const suffix = m[5];
  if (suffix !== undefined) {
    const ids = suffix
      .split("_")
      .filter((id) => id !== "")
      .map((id) => (/^\d+$/.test(id) ? String(Number(id)) : id));
    text += `-${ids.length > 0 ? ids.join(".") : "0"}`;
  }
  const parsed = semver.parse(text);
  return parsed ? { raw, semver: parsed, prerelease: suffix !== undefined } : undefined;
}

/** <0, 0, >0 like a comparator. */
export const compareVersions = (a: PluginVersion, b: PluginVersion): number => semver.compare(a.semver, b.semver);

// ---------------------------------------------------------------------------------------------
// Decisions

/** An installed plugin as the policy needs it. */
export interface InstalledPlugin {
  plugin_id: string;
  plugin_unique_identifier: PluginUniqueIdentifier;
  source: string;
}

/** The marketplace's latest release of a plugin. */
export interface LatestRelease {
  plugin_id: string;
  version: string;
  unique_identifier: PluginUniqueIdentifier;
}

export type SkipReason =
  | "disabled"
  | "not-from-marketplace"
  | "not-included"
  | "excluded"
  | "not-in-marketplace"
  | "unparseable-version"
  | "up-to-date"
  | "older-in-marketplace"
  | "pre-release"
  | "not-a-fix";

export type UpgradeDecision =
  | {
      plugin_id: string;
      from: PluginUniqueIdentifier;
      action: "upgrade";
      to: PluginUniqueIdentifier;
      from_version: string;
      to_version: string;
    }
  | { plugin_id: string; from: PluginUniqueIdentifier; action: "skip"; reason: SkipReason; latest?: string };

/**
 * A marketplace entry as a release, or undefined when it does not hold together: the package
 * identifier must be valid, name the same plugin, and carry the advertised version.
 */
export function releaseFromMarketplace(entry: {
  plugin_id: string;
  latest_version: string;
  latest_package_identifier: string;
}): LatestRelease | undefined {
  // A marketplace answer is where this identifier enters: checked here, once.
  if (!isUniqueIdentifier(entry.latest_package_identifier)) return undefined;
  const id = identifierParts(entry.latest_package_identifier);
  if (id.pluginId !== entry.plugin_id || id.version !== entry.latest_version) return undefined;
  return { plugin_id: entry.plugin_id, version: entry.latest_version, unique_identifier: id.raw };
}

/** Whether the strategy's mode selects this plugin at all. */
function selected(strategy: UpgradeStrategy, pluginId: string): SkipReason | undefined {
  switch (strategy.upgrade_mode) {
    case "all":
      return undefined;
    case "partial":
      return strategy.include_plugins.includes(pluginId) ? undefined : "not-included";
    case "exclude":
      return strategy.exclude_plugins.includes(pluginId) ? "excluded" : undefined;
  }
}

export function decideUpgrade(
  strategy: UpgradeStrategy,
  installed: InstalledPlugin,
  latest: LatestRelease | undefined,
): UpgradeDecision {
  const base = { plugin_id: installed.plugin_id, from: installed.plugin_unique_identifier };
  const skip = (reason: SkipReason): UpgradeDecision => ({
    ...base,
    action: "skip",
    reason,
    ...(latest && { latest: latest.unique_identifier }),
  });
  if (strategy.strategy_setting === "disabled") return skip("disabled");
  if (installed.source !== "marketplace") return skip("not-from-marketplace");
  const unselected = selected(strategy, installed.plugin_id);
  if (unselected) return skip(unselected);
  if (!latest || latest.plugin_id !== installed.plugin_id)
    return { ...base, action: "skip", reason: "not-in-marketplace" };
  const current = parsePluginVersion(identifierParts(installed.plugin_unique_identifier).version);
  const next = parsePluginVersion(latest.version);
  if (!current || !next) return skip("unparseable-version");
  const order = compareVersions(next, current);
  if (order === 0) return skip("up-to-date");
  if (order < 0) return skip("older-in-marketplace");
  if (next.prerelease && !current.prerelease) return skip("pre-release");
  if (
    strategy.strategy_setting === "fix_only" &&
    (next.semver.major !== current.semver.major || next.semver.minor !== current.semver.minor)
  ) {
    return skip("not-a-fix");
  }
  return { ...base, action: "upgrade", to: latest.unique_identifier, from_version: current.raw, to_version: next.raw };
}

/** One decision per installed plugin, in the order given. */
export function planUpgrades(
  strategy: UpgradeStrategy,
  installed: readonly InstalledPlugin[],
  latestOf: (pluginId: string) => LatestRelease | undefined,
): UpgradeDecision[] {
  return installed.map((plugin) => decideUpgrade(strategy, plugin, latestOf(plugin.plugin_id)));
}
