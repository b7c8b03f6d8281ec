/** The auto-upgrade policy: strategies, modes, version rules, slots. Pure functions, no I/O. */
import { describe, expect, it } from "vitest";
import { type PluginUniqueIdentifier, uniqueIdentifier } from "../../src/domain/identifier.js";
import {
  compareVersions,
  decideUpgrade,
  type LatestRelease,
  parsePluginVersion,
  planUpgrades,
  releaseFromMarketplace,
} from "../../src/domain/upgrade-policy.js";
import {
  absoluteSlotAt,
  DEFAULT_STRATEGY,
  excludePlugin,
  type StrategySetting,
  slotOfDay,
  slotOfTimeOfDay,
  slotsToRun,
  slotWindow,
  type UpgradeMode,
  type UpgradeStrategy,
} from "../../src/domain/upgrade-strategy.js";

const SUM = "a".repeat(64);
const uid = (plugin: string, version: string) => uniqueIdentifier(`${plugin}:${version}@${SUM}`);
const installed = (plugin: string, version: string, source = "marketplace") => ({
  plugin_id: plugin,
  plugin_unique_identifier: uid(plugin, version),
  source,
});
const release = (plugin: string, version: string): LatestRelease => ({
  plugin_id: plugin,
  version,
  unique_identifier: uid(plugin, version),
});
const strategy = (
  setting: StrategySetting,
  mode: UpgradeMode = "all",
  lists: Partial<UpgradeStrategy> = {},
): UpgradeStrategy => ({
  ...DEFAULT_STRATEGY,
  strategy_setting: setting,
  upgrade_mode: mode,
  ...lists,
});

const decide = (s: UpgradeStrategy, from: string, to: string | undefined, plugin = "org/p") =>
  decideUpgrade(s, installed(plugin, from), to === undefined ? undefined : release(plugin, to));
const outcome = (d: ReturnType<typeof decide>) => (d.action === "upgrade" ? `upgrade ${d.to_version}` : d.reason);

describe("strategies", () => {
  const cases: Array<[StrategySetting, string, string, string]> = [
    ["latest", "1.2.3", "1.2.4", "upgrade 1.2.4"],
    ["latest", "1.2.3", "1.3.0", "upgrade 1.3.0"],
    ["latest", "1.2.3", "2.0.0", "upgrade 2.0.0"],
    ["fix_only", "1.2.3", "1.2.4", "upgrade 1.2.4"],
    ["fix_only", "1.2.3", "1.2.10", "upgrade 1.2.10"],
    ["fix_only", "1.2.3", "1.3.0", "not-a-fix"],
    ["fix_only", "1.2.3", "2.0.0", "not-a-fix"],
    ["fix_only", "1.2.3", "2.2.4", "not-a-fix"],
    ["disabled", "1.2.3", "1.2.4", "disabled"],
    ["disabled", "1.2.3", "9.0.0", "disabled"],
  ];
  for (const [setting, from, to, expected] of cases) {
    it(`${setting}: ${from} with ${to} in the marketplace → ${expected}`, () => {
      expect(outcome(decide(strategy(setting), from, to))).toBe(expected);
    });
  }

  it("upgrades to the marketplace's package identifier, from the installed one", () => {
    const d = decide(strategy("latest"), "0.0.1", "0.0.2");
    expect(d).toEqual({
      plugin_id: "org/p",
      from: uid("org/p", "0.0.1"),
      action: "upgrade",
      to: uid("org/p", "0.0.2"),
      from_version: "0.0.1",
      to_version: "0.0.2",
    });
  });
});

describe("version edge cases", () => {
  const cases: Array<[string, StrategySetting, string, string, string]> = [
    ["equal", "latest", "1.2.3", "1.2.3", "up-to-date"],
    ["equal after coercion (2 parts)", "latest", "1.2", "1.2.0", "up-to-date"],
    ["equal after coercion (4 parts)", "latest", "1.2.3.0", "1.2.3", "up-to-date"],
    ["equal with leading zeros", "latest", "01.02.03", "1.2.3", "up-to-date"],
    ["older", "latest", "1.2.3", "1.2.2", "older-in-marketplace"],
    ["older major", "latest", "2.0.0", "1.9.9", "older-in-marketplace"],
    ["older under fix_only", "fix_only", "1.2.3", "1.2.1", "older-in-marketplace"],
    ["stable to pre-release", "latest", "1.2.3", "1.2.4-beta", "pre-release"],
    ["stable to pre-release of a major", "latest", "1.2.3", "2.0.0-rc1", "pre-release"],
    ["pre-release to its stable", "latest", "1.2.4-beta", "1.2.4", "upgrade 1.2.4"],
    ["pre-release to a newer pre-release", "latest", "1.2.4-beta", "1.2.4-rc", "upgrade 1.2.4-rc"],
    [
      "pre-release to a newer numbered pre-release",
      "fix_only",
      "1.2.4-beta_2",
      "1.2.4-beta_10",
      "upgrade 1.2.4-beta_10",
    ],
    ["pre-release to an older pre-release", "latest", "1.2.4-rc", "1.2.4-beta", "older-in-marketplace"],
    ["stable to its own pre-release", "latest", "1.2.4", "1.2.4-rc", "older-in-marketplace"],
    ["pre-release to a fix under fix_only", "fix_only", "1.2.4-beta", "1.2.5", "upgrade 1.2.5"],
    ["pre-release to a minor under fix_only", "fix_only", "1.2.4-beta", "1.3.0", "not-a-fix"],
    ["major bump under fix_only", "fix_only", "0.0.9", "1.0.0", "not-a-fix"],
    ["minor bump under fix_only", "fix_only", "0.1.9", "0.2.0", "not-a-fix"],
    ["4-part patch under fix_only", "fix_only", "1.2.3.4", "1.2.3.5", "upgrade 1.2.3.5"],
    ["4-part to the next patch", "fix_only", "1.2.3.9999", "1.2.4", "upgrade 1.2.4"],
    ["3-part to a 4-part refinement", "latest", "1.2.3", "1.2.3.1", "upgrade 1.2.3.1"],
    ["4-part older than 3-part", "latest", "1.2.4", "1.2.3.9999", "older-in-marketplace"],
    ["2-part to 3-part fix", "fix_only", "1.2", "1.2.1", "upgrade 1.2.1"],
    ["numeric order, not string order", "latest", "1.2.9", "1.2.10", "upgrade 1.2.10"],
    ["unparseable marketplace version", "latest", "1.2.3", "latest", "unparseable-version"],
    ["too many parts", "latest", "1.2.3", "1.2.3.4.5", "unparseable-version"],
  ];
  for (const [what, setting, from, to, expected] of cases) {
    it(`${what}: ${setting} ${from} → ${to} is ${expected}`, () => {
      const current = installed("org/p", from);
      // Unparseable versions cannot be in a valid identifier; give the release an odd identifier.
      const odd = `org/p:${to}@${SUM}` as PluginUniqueIdentifier;
      const latest: LatestRelease = { plugin_id: "org/p", version: to, unique_identifier: odd };
      expect(outcome(decideUpgrade(strategy(setting), current, latest))).toBe(expected);
    });
  }

  it("coerces versions keeping their order", () => {
    const order = [
      "0.0.1",
      "0.0.2-alpha",
      "0.0.2-beta",
      "0.0.2-beta_2",
      "0.0.2-beta_10",
      "0.0.2",
      "0.0.2.1",
      "0.0.3",
      "0.1",
      "0.1.1",
      "1.0.0.0001",
      "1.0.1",
      "10.0.0",
    ];
    const parsed = order.map((v) => parsePluginVersion(v));
    expect(parsed.every(Boolean)).toBe(true);
    for (let i = 1; i < parsed.length; i++) {
      expect(compareVersions(parsed[i]!, parsed[i - 1]!), `${order[i]} > ${order[i - 1]}`).toBeGreaterThan(0);
    }
  });

  it("rejects what the identifier grammar rejects", () => {
    for (const v of [
      "1",
      "v1.2.3",
      "1.2.3-beta.1",
      "1.2.3-",
      "12345.0.0",
      "1.2.3+build",
      "1..2",
      "",
      "1.2.3-toolongsuffix123456",
    ]) {
      expect(parsePluginVersion(v), v).toBeUndefined();
    }
    expect(parsePluginVersion("1.2.3-_")?.prerelease).toBe(true);
  });
});

describe("modes", () => {
  const plugins = [installed("org/a", "1.0.0"), installed("org/b", "1.0.0"), installed("org/c", "1.0.0")];
  const latest = new Map(["org/a", "org/b", "org/c"].map((p) => [p, release(p, "1.0.1")]));
  const plan = (s: UpgradeStrategy) =>
    Object.fromEntries(planUpgrades(s, plugins, (id) => latest.get(id)).map((d) => [d.plugin_id, outcome(d)]));

  it("all: every marketplace plugin", () => {
    expect(plan(strategy("fix_only", "all", { include_plugins: ["org/a"], exclude_plugins: ["org/b"] }))).toEqual({
      "org/a": "upgrade 1.0.1",
      "org/b": "upgrade 1.0.1",
      "org/c": "upgrade 1.0.1",
    });
  });

  it("partial: only the included plugins", () => {
    expect(
      plan(strategy("latest", "partial", { include_plugins: ["org/a", "org/c"], exclude_plugins: ["org/a"] })),
    ).toEqual({
      "org/a": "upgrade 1.0.1",
      "org/b": "not-included",
      "org/c": "upgrade 1.0.1",
    });
  });

  it("partial with an empty include list: nothing", () => {
    expect(Object.values(plan(strategy("latest", "partial")))).toEqual([
      "not-included",
      "not-included",
      "not-included",
    ]);
  });

  it("exclude: all but the excluded plugins", () => {
    expect(plan(strategy("latest", "exclude", { exclude_plugins: ["org/b"], include_plugins: ["org/c"] }))).toEqual({
      "org/a": "upgrade 1.0.1",
      "org/b": "excluded",
      "org/c": "upgrade 1.0.1",
    });
  });

  it("only plugins installed from the marketplace", () => {
    const mixed = [
      installed("org/a", "1.0.0", "package"),
      installed("org/b", "1.0.0", "github"),
      installed("org/c", "1.0.0", "remote"),
    ];
    const decisions = planUpgrades(strategy("latest"), mixed, (id) => latest.get(id));
    expect(decisions.map(outcome)).toEqual(["not-from-marketplace", "not-from-marketplace", "not-from-marketplace"]);
  });

  it("plugins the marketplace does not list are left alone", () => {
    expect(outcome(decide(strategy("latest"), "1.0.0", undefined))).toBe("not-in-marketplace");
    // A release of another plugin is never applied.
    expect(outcome(decideUpgrade(strategy("latest"), installed("org/a", "1.0.0"), release("org/b", "2.0.0")))).toBe(
      "not-in-marketplace",
    );
  });
});

describe("strategy × mode matrix", () => {
  // org/fix has a patch waiting, org/major a major; org/other is listed in neither list.
  const plugins = [installed("org/fix", "1.0.0"), installed("org/major", "1.0.0"), installed("org/other", "1.0.0")];
  const latest = new Map([
    ["org/fix", release("org/fix", "1.0.1")],
    ["org/major", release("org/major", "2.0.0")],
    ["org/other", release("org/other", "1.0.1")],
  ]);
  const lists = { include_plugins: ["org/fix", "org/major"], exclude_plugins: ["org/fix"] };
  const expected: Record<StrategySetting, Record<UpgradeMode, string[]>> = {
    latest: {
      all: ["org/fix", "org/major", "org/other"],
      partial: ["org/fix", "org/major"],
      exclude: ["org/major", "org/other"],
    },
    fix_only: { all: ["org/fix", "org/other"], partial: ["org/fix"], exclude: ["org/other"] },
    disabled: { all: [], partial: [], exclude: [] },
  };
  for (const setting of ["latest", "fix_only", "disabled"] as const) {
    for (const mode of ["all", "partial", "exclude"] as const) {
      it(`${setting} + ${mode} upgrades ${expected[setting][mode].join(", ") || "nothing"}`, () => {
        const upgraded = planUpgrades(strategy(setting, mode, lists), plugins, (id) => latest.get(id))
          .filter((d) => d.action === "upgrade")
          .map((d) => d.plugin_id);
        expect(upgraded).toEqual(expected[setting][mode]);
      });
    }
  }
});

describe("marketplace entries", () => {
  it("accepts an entry whose identifier names the plugin and the advertised version", () => {
    expect(
      releaseFromMarketplace({
        plugin_id: "org/p",
        latest_version: "1.2.3",
        latest_package_identifier: uid("org/p", "1.2.3"),
      }),
    ).toEqual(release("org/p", "1.2.3"));
  });

  it("drops entries that contradict themselves or are not identifiers", () => {
    for (const entry of [
      { plugin_id: "org/p", latest_version: "1.2.4", latest_package_identifier: uid("org/p", "1.2.3") },
      { plugin_id: "org/q", latest_version: "1.2.3", latest_package_identifier: uid("org/p", "1.2.3") },
      { plugin_id: "org/p", latest_version: "1.2.3", latest_package_identifier: "org/p:1.2.3" },
      { plugin_id: "org/p", latest_version: "1.2.3", latest_package_identifier: "https://example.com/p.difypkg" },
    ]) {
      expect(releaseFromMarketplace(entry)).toBeUndefined();
    }
  });
});

describe("exclude-plugin (Dify's semantics)", () => {
  it("creates a fix_only strategy at 00:00 excluding the plugin when there is none", () => {
    expect(excludePlugin(undefined, "org/a")).toEqual({
      strategy_setting: "fix_only",
      upgrade_time_of_day: 0,
      upgrade_mode: "exclude",
      exclude_plugins: ["org/a"],
      include_plugins: [],
    });
  });

  it("adds to the exclude list once", () => {
    const s = strategy("latest", "exclude", { exclude_plugins: ["org/b"] });
    expect(excludePlugin(s, "org/a").exclude_plugins).toEqual(["org/b", "org/a"]);
    expect(excludePlugin(excludePlugin(s, "org/a"), "org/a").exclude_plugins).toEqual(["org/b", "org/a"]);
  });

  it("removes from the include list in partial mode", () => {
    const s = strategy("latest", "partial", { include_plugins: ["org/a", "org/b"] });
    expect(excludePlugin(s, "org/a")).toMatchObject({ upgrade_mode: "partial", include_plugins: ["org/b"] });
  });

  it("turns all into exclude with just this plugin", () => {
    const s = strategy("latest", "all", { exclude_plugins: ["org/old"], upgrade_time_of_day: 3600 });
    expect(excludePlugin(s, "org/a")).toMatchObject({
      upgrade_mode: "exclude",
      exclude_plugins: ["org/a"],
      upgrade_time_of_day: 3600,
      strategy_setting: "latest",
    });
  });
});

describe("slots", () => {
  const at = (iso: string) => new Date(iso);

  it("puts times of day into 15-minute slots", () => {
    expect(slotOfTimeOfDay(0)).toBe(0);
    expect(slotOfTimeOfDay(899)).toBe(0);
    expect(slotOfTimeOfDay(900)).toBe(1);
    expect(slotOfTimeOfDay(36_000)).toBe(40);
    expect(slotOfTimeOfDay(86_399)).toBe(95);
  });

  it("takes the coming slot 30 s before it starts, and its own slot when late", () => {
    const s = (iso: string) => slotWindow(absoluteSlotAt(at(iso)));
    expect(s("2030-01-01T09:59:30Z")).toEqual({ date: "2030-01-01", start: 36_000, end: 36_900 });
    expect(s("2030-01-01T10:00:00Z")).toEqual({ date: "2030-01-01", start: 36_000, end: 36_900 });
    expect(s("2030-01-01T10:13:59Z")).toEqual({ date: "2030-01-01", start: 36_000, end: 36_900 });
    expect(s("2030-01-01T10:14:00Z").start).toBe(36_900);
  });

  it("wraps around midnight", () => {
    const slot = absoluteSlotAt(at("2030-01-01T23:59:30Z"));
    expect(slotOfDay(slot)).toBe(0);
    expect(slotWindow(slot)).toEqual({ date: "2030-01-02", start: 0, end: 900 });
    const last = absoluteSlotAt(at("2030-01-01T23:44:30Z"));
    expect(slotOfDay(last)).toBe(95);
    expect(slotWindow(last)).toEqual({ date: "2030-01-01", start: 85_500, end: 86_400 });
    expect(slotOfDay(last + 1)).toBe(0);
  });

  it("catches up on missed slots, but not on a day-old history", () => {
    expect(slotsToRun(100, undefined)).toEqual([100]);
    expect(slotsToRun(100, 99)).toEqual([100]);
    expect(slotsToRun(100, 97)).toEqual([98, 99, 100]);
    expect(slotsToRun(100, 96)).toEqual([97, 98, 99, 100]);
    expect(slotsToRun(100, 95)).toEqual([100]);
    expect(slotsToRun(100, 100)).toEqual([]);
    expect(slotsToRun(100, 101)).toEqual([]);
  });
});

describe("local timer", () => {
  it("runs at start, then 30 s before every quarter hour", async () => {
    const { vi } = await import("vitest");
    const { startAutoUpgradeTimer } = await import("../../src/services/auto-upgrade.js");
    vi.useFakeTimers({ now: new Date("2030-01-01T10:07:00Z") });
    try {
      const runs: string[] = [];
      const timer = startAutoUpgradeTimer({
        runCycle: async (input = {}) => (runs.push((input.at as Date).toISOString()), {} as never),
      });
      await vi.advanceTimersByTimeAsync(0);
      expect(runs).toEqual(["2030-01-01T10:07:00.000Z"]);
      await vi.advanceTimersByTimeAsync(7 * 60_000 + 29_000);
      expect(runs).toHaveLength(1);
      await vi.advanceTimersByTimeAsync(1_000);
      expect(runs.at(-1)).toBe("2030-01-01T10:14:30.000Z");
      await vi.advanceTimersByTimeAsync(15 * 60_000);
      expect(runs.at(-1)).toBe("2030-01-01T10:29:30.000Z");
      timer.stop();
      await vi.advanceTimersByTimeAsync(60 * 60_000);
      expect(runs).toHaveLength(3);
    } finally {
      vi.useRealTimers();
    }
  });
});
