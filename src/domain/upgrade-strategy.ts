/**
 * A tenant's auto-upgrade strategy (Dify's fields and defaults) and the schedule it runs on: 96
 * slots of 15 minutes a day. Pure, and apart from the version rules (upgrade-policy.ts, which
 * needs semver) so that the strategy store and routes load without them.
 */

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
export const absoluteSlotAt = (at: Date): number =>
  Math.floor((Math.floor(at.getTime() / 1000) + LEAD_SECONDS) / SLOT_SECONDS);

export const slotOfDay = (absoluteSlot: number): number =>
  ((absoluteSlot % SLOTS_PER_DAY) + SLOTS_PER_DAY) % SLOTS_PER_DAY;

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
