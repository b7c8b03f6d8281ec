/**
 * The auto-upgrade policy: which installed plugins a tenant's strategy upgrades, to what, and
 * which tenants are due at a given time. Pure: no I/O, no clock, no AWS.
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
import { isUniqueIdentifier, parseUniqueIdentifier } from "./identifier.js";

export const STRATEGY_SETTINGS = ["disabled", "fix_only", "latest"] as const;
export const UPGRADE_MODES = ["all", "partial", "exclude"] as const;
export type StrategySetting = (typeof STRATEGY_SETTINGS)[number];
export type UpgradeMode = (typeof UPGRADE_MODES)[number];

export interface UpgradeStrategy {
  strategy_setting: StrategySetting;
  /** Seconds since 00:00 UTC, 0–86399. */
  upgrade_time_of_day: number;
  upgrade_mode: UpgradeMode;
  /** Plugin ids (`org/name`) never upgraded in `exclude` mode. */
  exclude_plugins: string[];
  /** Plugin ids (`org/name`) upgraded in `partial` mode (and only those). */
  include_plugins: string[];
}

/** What Dify's console answers for a tenant that never saved a strategy: nothing is upgraded. */
export const UNSET_STRATEGY: UpgradeStrategy = {
  strategy_setting: "disabled",
  upgrade_time_of_day: 0,
  upgrade_mode: "exclude",
  exclude_plugins: [],
  include_plugins: [],
};

/** Dify's defaults for fields a "change strategy" request leaves out (and its model's server defaults). */
export const DEFAULT_STRATEGY: UpgradeStrategy = {
  strategy_setting: "fix_only",
  upgrade_time_of_day: 0,
  upgrade_mode: "exclude",
  exclude_plugins: [],
  include_plugins: [],
};

/**
 * Dify's "exclude this plugin from auto-upgrade" (PluginAutoUpgradeService.exclude_plugin):
 * no strategy yet → fix_only at 00:00 excluding it; exclude mode → add it; partial → drop it from
 * the include list; all → switch to exclude mode with only this plugin excluded.
 */
export function excludePlugin(current: UpgradeStrategy | undefined, pluginId: string): UpgradeStrategy {
  if (!current) return { ...DEFAULT_STRATEGY, upgrade_mode: "exclude", exclude_plugins: [pluginId] };
  switch (current.upgrade_mode) {
    case "exclude":
      return current.exclude_plugins.includes(pluginId)
        ? current
        : { ...current, exclude_plugins: [...current.exclude_plugins, pluginId] };
    case "partial":
      return { ...current, include_plugins: current.include_plugins.filter((p) => p !== pluginId) };
    case "all":
      return { ...current, upgrade_mode: "exclude", exclude_plugins: [pluginId] };
  }
}

// ---------------------------------------------------------------------------------------------
// Time of day: 96 slots of 15 minutes. The checker runs every 15 minutes and handles one slot.

export const SECONDS_PER_DAY = 86_400;
export const SLOT_SECONDS = 900;
export const SLOTS_PER_DAY = SECONDS_PER_DAY / SLOT_SECONDS;
/**
 * A run handles the slot that contains `now + LEAD_SECONDS`: a run fired just before a slot starts
 * (the local timer fires 30 s early, like Dify's `now - 30`) takes the coming slot, a late one
 * (up to 14 minutes) still takes its own.
 */
export const LEAD_SECONDS = 60;

/** The slot of the day (0–95) a time of day belongs to. */
export const slotOfTimeOfDay = (secondsOfDay: number): number => Math.floor(secondsOfDay / SLOT_SECONDS);

/** Slots counted from the epoch: consecutive numbers across midnight, so "the next slot" is +1. */
export const absoluteSlotAt = (at: Date): number => Math.floor((Math.floor(at.getTime() / 1000) + LEAD_SECONDS) / SLOT_SECONDS);

export const slotOfDay = (absoluteSlot: number): number => ((absoluteSlot % SLOTS_PER_DAY) + SLOTS_PER_DAY) % SLOTS_PER_DAY;

/** The window [start, end) of seconds of the day an absolute slot covers, and its UTC date. */
export function slotWindow(absoluteSlot: number): { date: string; start: number; end: number } {
  const startSeconds = absoluteSlot * SLOT_SECONDS;
  const start = startSeconds % SECONDS_PER_DAY;
  return { date: new Date(startSeconds * 1000).toISOString().slice(0, 10), start, end: start + SLOT_SECONDS };
}

/**
 * The slots a run at `current` handles, given the last slot any run claimed: normally just
 * `current`; after missed runs (a throttled Lambda, a sleeping laptop) also the skipped slots,
 * up to `maxCatchUp` of them. Slots already claimed are never returned.
 */
export function slotsToRun(current: number, lastClaimed: number | undefined, maxCatchUp = 4): number[] {
  if (lastClaimed === undefined || lastClaimed < current - maxCatchUp) return [current];
  const slots: number[] = [];
  for (let s = lastClaimed + 1; s <= current; s++) slots.push(s);
  return slots;
}

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
  const [major, minor, patch, fourth] = [m[1], m[2], m[3], m[4]].map((p) => Number(p ?? "0")) as [number, number, number, number];
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
  plugin_unique_identifier: string;
  source: string;
}

/** The marketplace's latest release of a plugin. */
export interface LatestRelease {
  plugin_id: string;
  version: string;
  unique_identifier: string;
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
  | { plugin_id: string; from: string; action: "upgrade"; to: string; from_version: string; to_version: string }
  | { plugin_id: string; from: string; action: "skip"; reason: SkipReason; latest?: string };

/**
 * A marketplace entry as a release, or undefined when it does not hold together: the package
 * identifier must be valid, name the same plugin, and carry the advertised version.
 */
export function releaseFromMarketplace(entry: { plugin_id: string; latest_version: string; latest_package_identifier: string }): LatestRelease | undefined {
  if (!isUniqueIdentifier(entry.latest_package_identifier)) return undefined;
  const id = parseUniqueIdentifier(entry.latest_package_identifier);
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

export function decideUpgrade(strategy: UpgradeStrategy, installed: InstalledPlugin, latest: LatestRelease | undefined): UpgradeDecision {
  const base = { plugin_id: installed.plugin_id, from: installed.plugin_unique_identifier };
  const skip = (reason: SkipReason): UpgradeDecision => ({ ...base, action: "skip", reason, ...(latest && { latest: latest.unique_identifier }) });
  if (strategy.strategy_setting === "disabled") return skip("disabled");
  if (installed.source !== "marketplace") return skip("not-from-marketplace");
  const unselected = selected(strategy, installed.plugin_id);
  if (unselected) return skip(unselected);
  if (!latest || latest.plugin_id !== installed.plugin_id) return { ...base, action: "skip", reason: "not-in-marketplace" };
  const currentVersion = isUniqueIdentifier(installed.plugin_unique_identifier)
    ? parseUniqueIdentifier(installed.plugin_unique_identifier).version
    : undefined;
  const current = currentVersion === undefined ? undefined : parsePluginVersion(currentVersion);
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
