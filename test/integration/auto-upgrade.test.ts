/**
 * Auto-upgrade end to end: the local daemon (real store, real Python plugin processes) with its
 * marketplace pointed at a fake marketplace over real HTTP that serves packages built from the
 * echo-tool fixture at several versions. Scheduled runs go through the EventBridge handler
 * (functions/upgrade-check.ts); strategies are set and read through the management routes.
 *
 * Each test uses its own slot of the day (and its own date), so runs never pick up another test's
 * tenants. The daemon does not cache the snapshot here (AUTO_UPGRADE_SNAPSHOT_CACHE_SECONDS=0), so
 * each run sees the marketplace as the test left it; the cache has its own test.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import type { Context } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ContinuationEvent, createUpgradeCheckHandler } from "../../functions/upgrade-check.js";
import { HttpMarketplace } from "../../src/adapters/http-marketplace.js";
import { uniqueIdentifier } from "../../src/domain/identifier.js";
import { AutoUpgrade, type CycleReport, type UpgradeStarter } from "../../src/services/auto-upgrade.js";
import { SnapshotCache, UpgradeRecords, UpgradeStrategies } from "../../src/stores/upgrade-strategies.js";
import { echoToolPackage, FakeMarketplace } from "../support/fake-marketplace.js";
import { startTestDaemon, TEST_KEY, type TestDaemon, uploadForm, waitForTask } from "../support/local-daemon.js";

const A = "fixtures/echo-tool";
const B = "fixtures/echo-extra";

let fake: FakeMarketplace;
let d: TestDaemon;
const pkg: Record<string, string> = {};

type Envelope<T = any> = { code: number; message: string; data: T };
const body = async <T = any>(res: Response) => (await res.json()) as Envelope<T>;
const M = (tenant: string) => `/plugin/${tenant}/management`;

beforeAll(async () => {
  fake = await FakeMarketplace.start();
  d = await startTestDaemon({ MARKETPLACE_API_URL: fake.url, AUTO_UPGRADE_SNAPSHOT_CACHE_SECONDS: "0" });
  const versions: Array<[string, string, string]> = [
    ["A0.0.1", "0.0.1", "echo-tool"],
    ["A0.0.2", "0.0.2", "echo-tool"],
    ["A0.0.3-beta1", "0.0.3-beta1", "echo-tool"],
    ["A0.0.3", "0.0.3", "echo-tool"],
    ["A0.0.9", "0.0.9", "echo-tool"],
    ["B0.0.1", "0.0.1", "echo-extra"],
    ["B1.0.0", "1.0.0", "echo-extra"],
  ];
  for (const [key, version, name] of versions) pkg[key] = await fake.publish(await echoToolPackage(version, name));
  // The real snapshot lists thousands of plugins; these are never installed.
  fake.addOtherPlugins(300);
});

afterAll(async () => {
  await d?.stop();
  await fake?.close();
});

// ---------------------------------------------------------------------------------------------

const schedule = createUpgradeCheckHandler();

function lambdaContext(remaining: () => number = () => 300_000): Context {
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: "upgrade-check",
    functionVersion: "$LATEST",
    invokedFunctionArn: "arn:aws:lambda:us-east-1:000000000000:function:upgrade-check",
    memoryLimitInMB: "512",
    awsRequestId: "test",
    logGroupName: "test",
    logStreamName: "test",
    getRemainingTimeInMillis: remaining,
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

/** What EventBridge sends for a scheduled rule. */
const scheduledEvent = (time: string) => ({
  version: "0",
  id: "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
  "detail-type": "Scheduled Event",
  source: "aws.events",
  account: "000000000000",
  time,
  region: "us-east-1",
  resources: ["arn:aws:events:us-east-1:000000000000:rule/upgrade-check"],
  detail: {},
});

const runScheduled = async (time: string) => (await schedule(scheduledEvent(time), lambdaContext())) as CycleReport;

const hms = (h: number, m = 0, s = 0) => h * 3600 + m * 60 + s;

async function setStrategy(tenant: string, strategy: Record<string, unknown>) {
  const env = await body(await d.call(`${M(tenant)}/auto-upgrade/set`, { method: "POST", json: strategy }));
  expect(env.code, env.message).toBe(0);
  return env.data;
}

async function status(tenant: string) {
  const env = await body(await d.call(`${M(tenant)}/auto-upgrade`));
  expect(env.code).toBe(0);
  return env.data as {
    strategy: Record<string, unknown>;
    configured: boolean;
    last_check: null | {
      run_id: string;
      trigger: string;
      slot?: number;
      status: string;
      message: string;
      upgrades: Array<{
        plugin_id: string;
        from: string;
        to: string;
        task_id: string;
        status: string;
        message: string;
      }>;
      failures: Array<{ plugin_id: string; message: string }>;
      skipped: Array<{ plugin_id: string; reason: string; latest?: string }>;
    };
  };
}

/** Installs like Dify does for marketplace plugins: by identifier, the daemon downloads it. */
async function installFromMarketplace(tenant: string, uid: string) {
  const env = await body(
    await d.call(`${M(tenant)}/install/identifiers`, {
      method: "POST",
      json: { plugin_unique_identifiers: [uid], source: "marketplace", metas: [{ plugin_unique_identifier: uid }] },
    }),
  );
  expect(env.code, env.message).toBe(0);
  const task = await waitForTask(d, tenant, env.data.task_id);
  expect(task.status, JSON.stringify(task.plugins)).toBe("success");
}

async function installed(tenant: string): Promise<Record<string, string>> {
  const env = await body(await d.call(`${M(tenant)}/list?page=1&page_size=256`));
  return Object.fromEntries(
    (env.data.list as Array<{ plugin_id: string; version: string }>).map((p) => [p.plugin_id, p.version]),
  );
}

async function tasksOf(tenant: string) {
  return (await body(await d.call(`${M(tenant)}/install/tasks?page=1&page_size=256`))).data as Array<{
    id: string;
    status: string;
  }>;
}

/** Runs `action` and answers the install tasks it created (successful tasks expire, so count new ids). */
async function newTasks(tenant: string, action: () => Promise<unknown>) {
  const before = new Set((await tasksOf(tenant)).map((t) => t.id));
  await action();
  return (await tasksOf(tenant)).filter((t) => !before.has(t.id));
}

/** Waits for every upgrade the tenant's last check started (a synchronous upgrade has no task). */
async function settle(tenant: string) {
  const s = await status(tenant);
  for (const u of s.last_check?.upgrades ?? []) if (u.task_id) await waitForTask(d, tenant, u.task_id);
}

let tenantCounter = 0;
const newTenant = (label: string) => `${label}-${++tenantCounter}`;

// ---------------------------------------------------------------------------------------------

describe("strategies and modes in one scheduled run", () => {
  // Marketplace: A's latest is a fix (0.0.1 → 0.0.2), B's latest is a major (0.0.1 → 1.0.0).
  const T = {
    latestAll: newTenant("latest-all"),
    fixAll: newTenant("fix-all"),
    disabled: newTenant("disabled"),
    unset: newTenant("unset"),
    partialB: newTenant("partial-b"),
    partialEmpty: newTenant("partial-empty"),
    excludeA: newTenant("exclude-a"),
    fixExcludeNone: newTenant("fix-exclude-none"),
  };
  const time = hms(1, 5);
  const strategies: Record<string, Record<string, unknown> | undefined> = {
    [T.latestAll]: { strategy_setting: "latest", upgrade_mode: "all", upgrade_time_of_day: time },
    [T.fixAll]: { strategy_setting: "fix_only", upgrade_mode: "all", upgrade_time_of_day: time },
    [T.disabled]: { strategy_setting: "disabled", upgrade_mode: "all", upgrade_time_of_day: time },
    [T.unset]: undefined,
    [T.partialB]: {
      strategy_setting: "latest",
      upgrade_mode: "partial",
      include_plugins: [B],
      exclude_plugins: [B],
      upgrade_time_of_day: time,
    },
    [T.partialEmpty]: {
      strategy_setting: "latest",
      upgrade_mode: "partial",
      include_plugins: [],
      upgrade_time_of_day: time,
    },
    [T.excludeA]: {
      strategy_setting: "latest",
      upgrade_mode: "exclude",
      exclude_plugins: [A],
      include_plugins: [A],
      upgrade_time_of_day: time,
    },
    // Dify's defaults: fix_only, exclude mode, nothing excluded.
    [T.fixExcludeNone]: { upgrade_time_of_day: time },
  };
  let report: CycleReport;

  beforeAll(async () => {
    fake.setLatest(pkg["A0.0.2"]!);
    fake.setLatest(pkg["B1.0.0"]!);
    for (const [tenant, strategy] of Object.entries(strategies)) {
      await installFromMarketplace(tenant, pkg["A0.0.1"]!);
      await installFromMarketplace(tenant, pkg["B0.0.1"]!);
      if (strategy) await setStrategy(tenant, strategy);
    }
    fake.resetCounters();
    report = await runScheduled("2030-01-01T01:00:00Z");
    for (const tenant of Object.keys(strategies)) await settle(tenant);
  });

  it("handles the slot once, fetching the snapshot once for all its tenants", () => {
    expect(report).toMatchObject({
      done: true,
      snapshot: "fetched",
      tenants: 6,
      failed_tenants: 0,
      skipped_tenants: 0,
      upgrades_started: 6,
    });
    expect(report.slots).toEqual([expect.objectContaining({ date: "2030-01-01", start: hms(1), end: hms(1, 15) })]);
    expect(fake.requests.snapshot).toBe(1);
    // Dify counts each auto-upgrade install on the marketplace; so does the daemon.
    expect(fake.installCounts.sort()).toEqual(
      [pkg["A0.0.2"], pkg["A0.0.2"], pkg["A0.0.2"], pkg["B1.0.0"], pkg["B1.0.0"], pkg["B1.0.0"]].sort(),
    );
  });

  it("latest + all: upgrades every plugin to its latest version", async () => {
    expect(await installed(T.latestAll)).toEqual({ [A]: "0.0.2", [B]: "1.0.0" });
    const s = await status(T.latestAll);
    expect(s.last_check).toMatchObject({ trigger: "schedule", slot: 4, status: "ok", run_id: report.run_id });
    expect(s.last_check!.upgrades.map((u) => [u.plugin_id, u.to, u.status]).sort()).toEqual(
      [
        [A, pkg["A0.0.2"], "success"],
        [B, pkg["B1.0.0"], "success"],
      ].sort(),
    );
  });

  it("fix_only + all: takes the patch, leaves the major bump", async () => {
    expect(await installed(T.fixAll)).toEqual({ [A]: "0.0.2", [B]: "0.0.1" });
    expect((await status(T.fixAll)).last_check!.skipped).toContainEqual({
      plugin_id: B,
      reason: "not-a-fix",
      latest: pkg["B1.0.0"],
    });
  });

  it("disabled: nothing is upgraded, and the tenant is not even in the slot's index", async () => {
    expect(await installed(T.disabled)).toEqual({ [A]: "0.0.1", [B]: "0.0.1" });
    expect((await status(T.disabled)).last_check).toBeNull();
  });

  it("no strategy saved: nothing is upgraded (Dify's console shows it as disabled)", async () => {
    expect(await installed(T.unset)).toEqual({ [A]: "0.0.1", [B]: "0.0.1" });
    const s = await status(T.unset);
    expect(s).toMatchObject({
      configured: false,
      last_check: null,
      strategy: { strategy_setting: "disabled", upgrade_mode: "exclude", upgrade_time_of_day: 0 },
    });
  });

  it("latest + partial: only the included plugins", async () => {
    expect(await installed(T.partialB)).toEqual({ [A]: "0.0.1", [B]: "1.0.0" });
    expect((await status(T.partialB)).last_check!.skipped).toContainEqual({
      plugin_id: A,
      reason: "not-included",
      latest: pkg["A0.0.2"],
    });
  });

  it("latest + partial with an empty include list: nothing", async () => {
    expect(await installed(T.partialEmpty)).toEqual({ [A]: "0.0.1", [B]: "0.0.1" });
    expect((await status(T.partialEmpty)).last_check).toMatchObject({ status: "ok", upgrades: [] });
  });

  it("latest + exclude: all but the excluded plugins", async () => {
    expect(await installed(T.excludeA)).toEqual({ [A]: "0.0.1", [B]: "1.0.0" });
    expect((await status(T.excludeA)).last_check!.skipped).toContainEqual({
      plugin_id: A,
      reason: "excluded",
      latest: pkg["A0.0.2"],
    });
  });

  it("Dify's defaults (fix_only + exclude, nothing excluded): the patch only", async () => {
    expect(await installed(T.fixExcludeNone)).toEqual({ [A]: "0.0.2", [B]: "0.0.1" });
    expect((await status(T.fixExcludeNone)).strategy).toEqual({
      strategy_setting: "fix_only",
      upgrade_time_of_day: hms(1, 5),
      upgrade_mode: "exclude",
      exclude_plugins: [],
      include_plugins: [],
    });
  });

  it("upgrades only plugins installed from the marketplace", async () => {
    const tenant = newTenant("uploaded");
    const uploaded = await body(
      await d.call(`${M(tenant)}/install/upload/package`, {
        method: "POST",
        body: uploadForm(await echoToolPackage("0.0.1")),
      }),
    );
    expect(uploaded.data.unique_identifier).toBe(pkg["A0.0.1"]);
    const started = await body(
      await d.call(`${M(tenant)}/install/identifiers`, {
        method: "POST",
        json: { plugin_unique_identifiers: [pkg["A0.0.1"]], source: "package", metas: [{}] },
      }),
    );
    await waitForTask(d, tenant, started.data.task_id);
    await setStrategy(tenant, { strategy_setting: "latest", upgrade_mode: "all", upgrade_time_of_day: hms(1, 30) });
    const r = await runScheduled("2030-01-02T01:29:30Z");
    expect(r.tenants).toBe(1);
    expect(await installed(tenant)).toEqual({ [A]: "0.0.1" });
    expect((await status(tenant)).last_check!.skipped).toEqual([
      { plugin_id: A, reason: "not-from-marketplace", latest: pkg["A0.0.2"] },
    ]);
  });
});

describe("time-window selection", () => {
  it("takes the tenants whose time of day falls in the coming 15 minutes, and no others", async () => {
    const at = (label: string, time: number, setting = "latest") => {
      const tenant = newTenant(label);
      return setStrategy(tenant, { strategy_setting: setting, upgrade_mode: "all", upgrade_time_of_day: time }).then(
        () => tenant,
      );
    };
    const inside = [await at("start", hms(5)), await at("end", hms(5, 14, 59))];
    const outside = [
      await at("after", hms(5, 15)),
      await at("before", hms(4, 59, 59)),
      await at("disabled", hms(5, 5), "disabled"),
    ];
    const r = await runScheduled("2030-01-03T04:59:30Z");
    expect(r.tenants).toBe(2);
    for (const t of inside)
      expect((await status(t)).last_check, t).toMatchObject({ trigger: "schedule", slot: 20, run_id: r.run_id });
    for (const t of outside) expect((await status(t)).last_check, t).toBeNull();
  });

  it("wraps around midnight", async () => {
    const early = newTenant("just-after-midnight");
    const late = newTenant("just-before-midnight");
    await setStrategy(early, { strategy_setting: "latest", upgrade_time_of_day: hms(0, 5) });
    await setStrategy(late, { strategy_setting: "latest", upgrade_time_of_day: hms(23, 59, 59) });
    const lastSlot = await runScheduled("2030-01-04T23:44:30Z");
    expect(lastSlot.slots[0]).toMatchObject({ date: "2030-01-04", start: hms(23, 45), end: 86_400 });
    expect((await status(late)).last_check?.run_id).toBe(lastSlot.run_id);
    const firstSlot = await runScheduled("2030-01-04T23:59:30Z");
    expect(firstSlot.slots[0]).toMatchObject({ date: "2030-01-05", start: 0, end: 900 });
    expect((await status(early)).last_check?.run_id).toBe(firstSlot.run_id);
  });

  it("catches up on slots whose runs were missed, and handles each slot once", async () => {
    const t20 = newTenant("six-twenty");
    const t35 = newTenant("six-thirty-five");
    await setStrategy(t20, { strategy_setting: "latest", upgrade_time_of_day: hms(6, 20) });
    await setStrategy(t35, { strategy_setting: "latest", upgrade_time_of_day: hms(6, 35) });
    const first = await runScheduled("2030-01-06T05:59:30Z");
    expect(first.slots.map((s) => s.start)).toEqual([hms(6)]);
    // The runs for 06:15 and 06:30 never came; the 06:45 run does their work too.
    const late = await runScheduled("2030-01-06T06:44:30Z");
    expect(late.slots.map((s) => s.start)).toEqual([hms(6, 15), hms(6, 30), hms(6, 45)]);
    expect(late.tenants).toBe(2);
    expect((await status(t20)).last_check?.run_id).toBe(late.run_id);
    expect((await status(t35)).last_check?.run_id).toBe(late.run_id);
    const again = await runScheduled("2030-01-06T06:45:10Z");
    expect(again).toMatchObject({ slots: [], tenants: 0 });
  });

  it("does not fetch the snapshot for a slot without tenants", async () => {
    fake.resetCounters();
    const r = await runScheduled("2030-01-07T07:29:30Z");
    expect(r).toMatchObject({ tenants: 0, snapshot: "not-needed", done: true });
    expect(fake.requests.snapshot).toBe(0);
  });
});

describe("version edge cases", () => {
  async function tenantOn(label: string, uid: string, strategy: Record<string, unknown>) {
    const tenant = newTenant(label);
    await installFromMarketplace(tenant, uid);
    await setStrategy(tenant, strategy);
    return tenant;
  }
  const skippedReason = async (tenant: string) => (await status(tenant)).last_check!.skipped.map((s) => s.reason);

  it("equal: nothing", async () => {
    fake.setLatest(pkg["A0.0.2"]!);
    const tenant = await tenantOn("equal", pkg["A0.0.2"]!, { strategy_setting: "latest", upgrade_time_of_day: hms(8) });
    expect(await newTasks(tenant, () => runScheduled("2030-01-08T07:59:30Z"))).toHaveLength(0);
    expect(await installed(tenant)).toEqual({ [A]: "0.0.2" });
    expect(await skippedReason(tenant)).toEqual(["up-to-date"]);
  });

  it("older in the marketplace: never downgrades (Dify's check would)", async () => {
    const tenant = await tenantOn("older", pkg["A0.0.2"]!, { strategy_setting: "latest", upgrade_time_of_day: hms(9) });
    fake.setLatest(pkg["A0.0.1"]!);
    await runScheduled("2030-01-09T08:59:30Z");
    expect(await installed(tenant)).toEqual({ [A]: "0.0.2" });
    expect(await skippedReason(tenant)).toEqual(["older-in-marketplace"]);
  });

  it("a pre-release: not taken from a stable version", async () => {
    const tenant = await tenantOn("pre-from-stable", pkg["A0.0.2"]!, {
      strategy_setting: "latest",
      upgrade_time_of_day: hms(10),
    });
    fake.setLatest(pkg["A0.0.3-beta1"]!);
    await runScheduled("2030-01-10T09:59:30Z");
    expect(await installed(tenant)).toEqual({ [A]: "0.0.2" });
    expect(await skippedReason(tenant)).toEqual(["pre-release"]);
  });

  it("from a pre-release: its stable release is taken", async () => {
    fake.setLatest(pkg["A0.0.3-beta1"]!);
    const tenant = await tenantOn("from-pre", pkg["A0.0.3-beta1"]!, {
      strategy_setting: "fix_only",
      upgrade_time_of_day: hms(11),
    });
    fake.setLatest(pkg["A0.0.3"]!);
    await runScheduled("2030-01-11T10:59:30Z");
    await settle(tenant);
    expect(await installed(tenant)).toEqual({ [A]: "0.0.3" });
  });

  it("a major bump under fix_only: nothing", async () => {
    fake.setLatest(pkg["B1.0.0"]!);
    const tenant = await tenantOn("major-fix-only", pkg["B0.0.1"]!, {
      strategy_setting: "fix_only",
      upgrade_time_of_day: hms(12),
    });
    await runScheduled("2030-01-12T11:59:30Z");
    expect(await installed(tenant)).toEqual({ [B]: "0.0.1" });
    expect(await skippedReason(tenant)).toEqual(["not-a-fix"]);
  });
});

describe("marketplace failures", () => {
  let tenant: string;
  beforeAll(async () => {
    tenant = newTenant("market-failures");
    await installFromMarketplace(tenant, pkg["A0.0.1"]!);
    await setStrategy(tenant, { strategy_setting: "latest", upgrade_time_of_day: hms(13) });
  });

  const cases: Array<[string, FakeMarketplace["snapshotMode"], RegExp]> = [
    ["down (HTTP 503)", "down", /HTTP 503/],
    ["answering HTML", "not-json", /not JSON/],
    ["answering JSON without a plugins list", "no-plugins", /no plugins list/],
  ];
  cases.forEach(([what, mode, message], i) => {
    it(`${what}: the cycle is skipped, nothing changes, the tenant sees why`, async () => {
      fake.setLatest(pkg["A0.0.2"]!);
      fake.snapshotMode = mode;
      try {
        const created = await newTasks(tenant, async () => {
          const r = await runScheduled(`2030-01-${13 + i}T12:59:30Z`);
          expect(r).toMatchObject({ snapshot: "unavailable", tenants: 1, skipped_tenants: 1, upgrades_started: 0 });
          expect(r.snapshot_error).toMatch(message);
        });
        expect(created).toHaveLength(0);
      } finally {
        fake.snapshotMode = "ok";
      }
      expect(await installed(tenant)).toEqual({ [A]: "0.0.1" });
      const s = await status(tenant);
      expect(s.last_check).toMatchObject({ status: "skipped", upgrades: [] });
      expect(s.last_check!.message).toMatch(message);
    });
  });

  it("unreachable (connection refused): the cycle is skipped, nothing changes", async () => {
    const { items, installations, tasks } = d.stores();
    const { config } = d.daemon;
    const started: string[] = [];
    const unreachable = new AutoUpgrade({
      strategies: new UpgradeStrategies(items),
      records: new UpgradeRecords(items),
      snapshots: new SnapshotCache(items, "http://127.0.0.1:9"),
      installations,
      tasks,
      // Port 9 (discard) has no listener on loopback.
      marketplace: new HttpMarketplace({
        marketplaceUrl: "http://127.0.0.1:9",
        githubUrl: config.githubUrl,
        maxPackageBytes: 1 << 20,
      }),
      upgrades: { start: async (_t, _f, to) => (started.push(to), { task_id: "never" }) },
      options: { snapshotCacheSeconds: 0, leaseSeconds: 3600 },
    });
    fake.setLatest(pkg["A0.0.2"]!);
    const absolute = Math.floor(Date.parse("2030-01-16T13:00:00Z") / 1000 / 900);
    const r = await unreachable.runCycle({ forceSlot: absolute });
    expect(r).toMatchObject({ snapshot: "unavailable", tenants: 1, skipped_tenants: 1, upgrades_started: 0 });
    expect(r.snapshot_error).toMatch(/ECONNREFUSED|fetch failed/);
    expect(started).toEqual([]);
    expect(await installed(tenant)).toEqual({ [A]: "0.0.1" });
    expect((await status(tenant)).last_check).toMatchObject({ status: "skipped" });
  });

  it("entries that contradict themselves are ignored: nothing changes", async () => {
    fake.setLatest(pkg["A0.0.2"]!);
    fake.snapshotMode = "garbage-entries";
    try {
      const r = await runScheduled("2030-01-16T12:59:30Z");
      expect(r).toMatchObject({ snapshot: "fetched", tenants: 1, upgrades_started: 0 });
    } finally {
      fake.snapshotMode = "ok";
    }
    expect(await installed(tenant)).toEqual({ [A]: "0.0.1" });
    expect((await status(tenant)).last_check!.skipped).toEqual([{ plugin_id: A, reason: "not-in-marketplace" }]);
  });

  it("a failed upgrade keeps the old version, and the failure shows on the task and the last check", async () => {
    fake.setLatest(pkg["A0.0.9"]!);
    fake.breakDownload(pkg["A0.0.9"]!);
    const r = await runScheduled("2030-01-17T12:59:30Z");
    expect(r.upgrades_started).toBe(1);
    const s = await status(tenant);
    const [upgrade] = s.last_check!.upgrades;
    const task = await waitForTask(d, tenant, upgrade!.task_id);
    expect(task.status).toBe("failed");
    expect(task.plugins[0]!.message).toMatch(/zip|difypkg|package/i);
    expect(await installed(tenant)).toEqual({ [A]: "0.0.1" });
    // The daemon still runs the old version.
    const res = await d.call(`/plugin/${tenant}/dispatch/tool/invoke`, {
      method: "POST",
      headers: { "x-plugin-id": A },
      json: {
        user_id: "u",
        data: {
          provider: "echo",
          tool: "echo",
          credentials: {},
          credential_type: "api-key",
          tool_parameters: { text: "still here" },
        },
      },
    });
    expect(await res.text()).toContain("still here");
    const after = await status(tenant);
    expect(after.last_check!.upgrades[0]).toMatchObject({ plugin_id: A, to: pkg["A0.0.9"], status: "failed" });
    expect(after.last_check!.upgrades[0]!.message).toBe(task.plugins[0]!.message);
    expect((await tasksOf(tenant)).find((t) => t.id === upgrade!.task_id)?.status).toBe("failed");
  });
});

describe("overlapping checks", () => {
  it("two runs of the same slot at once upgrade once", async () => {
    fake.setLatest(pkg["A0.0.2"]!);
    await installFromMarketplace(newTenant("runs-latest"), pkg["A0.0.2"]!);
    const tenant = newTenant("overlap-schedule");
    await installFromMarketplace(tenant, pkg["A0.0.1"]!);
    await setStrategy(tenant, { strategy_setting: "latest", upgrade_time_of_day: hms(14) });
    let reports: CycleReport[] = [];
    const created = await newTasks(tenant, async () => {
      reports = await Promise.all([runScheduled("2030-01-18T13:59:30Z"), runScheduled("2030-01-18T13:59:31Z")]);
    });
    // A0.0.2 already runs for another tenant: like upstream, the upgrade swaps the installation
    // at once and starts no task.
    expect(created).toEqual([]);
    expect(reports.map((r) => r.upgrades_started).sort()).toEqual([0, 1]);
    await settle(tenant);
    expect(await installed(tenant)).toEqual({ [A]: "0.0.2" });
  });

  it("two checks of the same tenant at once (check-now twice) start the upgrade once", async () => {
    fake.setLatest(pkg["A0.0.2"]!);
    await installFromMarketplace(newTenant("runs-latest"), pkg["A0.0.2"]!);
    const tenant = newTenant("overlap-now");
    await installFromMarketplace(tenant, pkg["A0.0.1"]!);
    await setStrategy(tenant, { strategy_setting: "latest", upgrade_time_of_day: hms(15) });
    let checks: any[] = [];
    const created = await newTasks(tenant, async () => {
      checks = await Promise.all(
        [1, 2].map(
          async () =>
            (await body(await d.call(`${M(tenant)}/auto-upgrade/check-now`, { method: "POST", json: {} }))).data,
        ),
      );
    });
    // Synchronous, as above: A0.0.2 already runs for another tenant.
    expect(created).toEqual([]);
    expect(checks.flatMap((c) => c.upgrades)).toHaveLength(1);
    expect(checks.flatMap((c) => c.skipped)).toContainEqual({
      plugin_id: A,
      reason: "upgrade-already-started",
      latest: pkg["A0.0.2"],
    });
    expect(await installed(tenant)).toEqual({ [A]: "0.0.2" });
  });
});

describe("a run longer than one invocation", () => {
  it("hands over to a new invocation with a cursor and checks every tenant exactly once", async () => {
    const tenants = Array.from({ length: 40 }, (_, i) => `many-${String(i).padStart(2, "0")}`);
    for (const t of tenants) await setStrategy(t, { strategy_setting: "latest", upgrade_time_of_day: hms(16, 1) });
    const handed: ContinuationEvent[] = [];
    // No time left after the first batch: every invocation does one batch and hands over.
    const handler = createUpgradeCheckHandler({
      continueWith: async (event) => void handed.push(event),
      reserveMs: 600_000,
    });
    const reports: CycleReport[] = [
      (await handler(scheduledEvent("2030-01-19T15:59:30Z"), lambdaContext())) as CycleReport,
    ];
    while (handed.length > 0) reports.push((await handler(handed.shift(), lambdaContext())) as CycleReport);
    expect(reports.length).toBeGreaterThan(2);
    expect(reports.at(-1)!.done).toBe(true);
    expect(reports.slice(0, -1).every((r) => !r.done && r.cursor)).toBe(true);
    expect(reports.reduce((n, r) => n + r.tenants, 0)).toBe(40);
    expect(new Set(reports.map((r) => r.run_id)).size).toBe(1);
    for (const t of tenants) expect((await status(t)).last_check?.run_id, t).toBe(reports[0]!.run_id);
  });

  it("uses the snapshot cached in the store across runs and continuations", async () => {
    const { items, installations, tasks } = d.stores();
    const { config } = d.daemon;
    const started: string[] = [];
    const counting: UpgradeStarter = { start: async (_t, _f, to) => (started.push(to), { task_id: "counted" }) };
    const cached = new AutoUpgrade({
      strategies: new UpgradeStrategies(items),
      records: new UpgradeRecords(items),
      snapshots: new SnapshotCache(items, config.marketplaceUrl),
      installations,
      tasks,
      marketplace: new HttpMarketplace({
        marketplaceUrl: fake.url,
        githubUrl: "http://127.0.0.1:9",
        maxPackageBytes: 1 << 20,
      }),
      upgrades: counting,
      options: { snapshotCacheSeconds: 900, leaseSeconds: 3600, concurrency: 2 },
    });
    const tenant = newTenant("cached");
    await installFromMarketplace(tenant, pkg["A0.0.1"]!);
    await setStrategy(tenant, { strategy_setting: "latest", upgrade_time_of_day: hms(16, 20) });
    fake.setLatest(pkg["A0.0.2"]!);
    fake.resetCounters();
    const first = await cached.runCycle({ at: new Date("2030-01-20T16:14:30Z") });
    const second = await cached.runCycle({ forceSlot: first.slots[0]!.absolute_slot });
    expect([first.snapshot, second.snapshot]).toEqual(["fetched", "cached"]);
    expect(fake.requests.snapshot).toBe(1);
    // The second run found the first one's lease: the upgrade was started once.
    expect(started).toEqual([pkg["A0.0.2"]]);
  });
});

describe("management routes and CLI", () => {
  const tenant = "routes-tenant";

  it("validates strategies like Dify's payload, with HTTP 400 and code -400", async () => {
    for (const bad of [
      { strategy_setting: "sometimes" },
      { upgrade_time_of_day: 86_400 },
      { upgrade_time_of_day: -1 },
      { upgrade_mode: "most" },
      { exclude_plugins: ["Not A Plugin"] },
      { include_plugins: "fixtures/echo-tool" },
    ]) {
      const res = await d.call(`${M(tenant)}/auto-upgrade/set`, { method: "POST", json: bad });
      expect(res.status, JSON.stringify(bad)).toBe(400);
      expect((await body(res)).code).toBe(-400);
    }
    expect((await status(tenant)).configured).toBe(false);
  });

  it("excludes a plugin like Dify: creating, adding, converting all → exclude", async () => {
    const exclude = async (plugin_id: string) =>
      (await body(await d.call(`${M(tenant)}/auto-upgrade/exclude-plugin`, { method: "POST", json: { plugin_id } })))
        .data;
    expect(await exclude(A)).toMatchObject({
      strategy_setting: "fix_only",
      upgrade_time_of_day: 0,
      upgrade_mode: "exclude",
      exclude_plugins: [A],
    });
    expect(await exclude(B)).toMatchObject({ exclude_plugins: [A, B] });
    await setStrategy(tenant, { strategy_setting: "latest", upgrade_mode: "partial", include_plugins: [A, B] });
    expect(await exclude(A)).toMatchObject({ upgrade_mode: "partial", include_plugins: [B] });
    await setStrategy(tenant, { strategy_setting: "latest", upgrade_mode: "all" });
    expect(await exclude(B)).toMatchObject({ upgrade_mode: "exclude", exclude_plugins: [B] });
  });

  it("the CLI sets, reads and checks a tenant through the daemon's routes", async () => {
    const run = promisify(execFile);
    const cli = (...args: string[]) =>
      run(process.execPath, ["--import", "tsx", "scripts/auto-upgrade.ts", ...args], {
        env: { ...process.env, DAEMON_URL: d.url, SERVER_KEY: TEST_KEY },
      }).then((r) => JSON.parse(r.stdout));
    const cliTenant = newTenant("cli");
    expect(
      await cli("set", cliTenant, "--strategy", "latest", "--time", "17:30", "--mode", "exclude", "--exclude", `${B}`),
    ).toMatchObject({
      strategy_setting: "latest",
      upgrade_time_of_day: hms(17, 30),
      upgrade_mode: "exclude",
      exclude_plugins: [B],
    });
    expect(await cli("set", cliTenant, "--time", "3600")).toMatchObject({
      strategy_setting: "latest",
      upgrade_time_of_day: 3600,
      exclude_plugins: [B],
    });
    expect((await cli("get", cliTenant)).strategy.upgrade_time_of_day).toBe(3600);
    expect(await cli("check-now", cliTenant)).toMatchObject({ trigger: "manual", status: "ok", upgrades: [] });
    await expect(cli("set", cliTenant, "--time", "25:00")).rejects.toThrow(/--time/);
  });
});

describe("on DynamoDB (the AWS store, served by the test emulator)", () => {
  it("indexes strategies by slot, runs a cycle with leases and the chunked snapshot cache", async () => {
    // Loaded here: the AWS SDK must not load before the local daemon's Lambda shim.
    const [{ createDynamoDbClient, createDynamoDbDocumentClient }, { DynamoDbItemStore }, aws] = await Promise.all([
      import("../../src/adapters/aws/clients.js"),
      import("../../src/adapters/aws/dynamodb-item-store.js"),
      import("../support/aws-resources.js"),
    ]);
    const endpoint = await aws.awsTestEndpoint();
    const client = createDynamoDbClient(endpoint.clientConfig);
    try {
      const table = aws.uniqueResourceName("auto-upgrade");
      await aws.createTestTable(client, table);
      const items = new DynamoDbItemStore({ tableName: table, client: createDynamoDbDocumentClient(client) });
      const { Installations } = await import("../../src/stores/installations.js");
      const { InstallTasks } = await import("../../src/stores/install-tasks.js");
      const installations = new Installations(items);
      const strategies = new UpgradeStrategies(items);
      const plugins = ["dyn/one", "dyn/two", "dyn/three"];
      const market = await FakeMarketplace.start();
      try {
        const latest = new Map(plugins.map((p) => [p, `${p}:1.2.3@${"c".repeat(64)}`]));
        for (const uid of latest.values()) market.setLatest(uid);
        market.addOtherPlugins(1200, "dyn-others"); // three snapshot chunks
        const now = new Date().toISOString();
        const tenants = Array.from({ length: 30 }, (_, i) => `dyn-${String(i).padStart(2, "0")}`);
        for (const [i, tenant] of tenants.entries()) {
          for (const p of plugins) {
            await installations.create({
              id: `${tenant}-${p}`,
              tenant_id: tenant,
              plugin_id: p,
              plugin_unique_identifier: uniqueIdentifier(`${p}:1.2.${i % 2 === 0 ? 2 : 3}@${"d".repeat(64)}`),
              runtime_type: "serverless",
              source: "marketplace",
              meta: {},
              endpoints_setups: 0,
              endpoints_active: 0,
              created_at: now,
              updated_at: now,
            });
          }
          await strategies.set(tenant, {
            strategy_setting: i % 3 === 2 ? "disabled" : "fix_only",
            upgrade_time_of_day: hms(2, 10),
            upgrade_mode: "all",
            exclude_plugins: [],
            include_plugins: [],
          });
        }
        // Someone else's slot is never read.
        await strategies.set("dyn-other-slot", {
          strategy_setting: "latest",
          upgrade_time_of_day: hms(2, 40),
          upgrade_mode: "all",
          exclude_plugins: [],
          include_plugins: [],
        });

        const started: string[] = [];
        const service = new AutoUpgrade({
          strategies,
          records: new UpgradeRecords(items),
          snapshots: new SnapshotCache(items, market.url),
          installations,
          tasks: new InstallTasks(items),
          marketplace: new HttpMarketplace({
            marketplaceUrl: market.url,
            githubUrl: "http://127.0.0.1:9",
            maxPackageBytes: 1 << 20,
          }),
          upgrades: {
            start: async (tenant, _f, to) => (started.push(`${tenant} ${to}`), { task_id: `t-${started.length}` }),
          },
          options: { snapshotCacheSeconds: 900, leaseSeconds: 3600 },
        });
        const first = await service.runCycle({ at: new Date("2031-02-01T01:59:30Z") });
        // 20 enabled tenants; the 10 on 1.2.2 (even index, not disabled) get three fixes each.
        const due = tenants.filter((_, i) => i % 3 !== 2);
        const behind = due.filter((t) => Number(t.slice(4)) % 2 === 0);
        expect(first).toMatchObject({
          tenants: due.length,
          upgrades_started: behind.length * 3,
          snapshot: "fetched",
          done: true,
        });
        const second = await service.runCycle({ forceSlot: first.slots[0]!.absolute_slot });
        expect(second).toMatchObject({ tenants: due.length, upgrades_started: 0, snapshot: "cached" });
        expect(market.requests.snapshot).toBe(1);
        expect(started.sort()).toEqual(behind.flatMap((t) => plugins.map((p) => `${t} ${latest.get(p)}`)).sort());
        const records = new UpgradeRecords(items);
        expect((await records.lastCheck(behind[0]!))?.skipped.map((s) => s.reason)).toEqual([
          "upgrade-already-started",
          "upgrade-already-started",
          "upgrade-already-started",
        ]);
        expect(await records.lastCheck("dyn-other-slot")).toBeUndefined();
        expect((await new SnapshotCache(items, market.url).get())?.entries).toHaveLength(1203);
      } finally {
        await market.close();
      }
    } finally {
      client.destroy();
      await endpoint.release();
    }
  });
});
