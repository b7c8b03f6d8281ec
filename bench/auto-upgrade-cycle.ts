/**
 * One auto-upgrade check cycle for many tenants, against the fake marketplace over real HTTP and
 * the SQLite item store (the local daemon's store).
 *
 *   npx tsx bench/auto-upgrade-cycle.ts [--tenants 1000] [--plugins 20] [--other-plugins 5000] [--trials 3]
 *
 * Setup (not measured): every tenant has `--plugins` marketplace installations at mixed versions
 * (equal, one patch behind, one minor behind, one major behind) and a strategy due in the same
 * 15-minute slot (the worst case: one run does them all); strategies mix fix_only, latest,
 * disabled, and the three modes. The marketplace snapshot lists those plugins plus
 * `--other-plugins` others, as the real one lists thousands.
 *
 * Measured: `AutoUpgrade.runCycle` as the scheduled handler calls it — slot claim, index queries,
 * snapshot fetch over HTTP (and its write to the store cache), each tenant's installation listing,
 * the policy's decisions, a lease write per upgrade, the last-check record per tenant. The only
 * stand-in: upgrades are counted instead of executed (the real starter creates an install task and
 * queues it; the download and install then run in the install worker, outside the check).
 * Each trial runs on a fresh copy of the seeded store. Writes bench/results/auto-upgrade-cycle.json.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { HttpMarketplace } from "../src/adapters/http-marketplace.js";
import { SqliteItemStore } from "../src/adapters/local/sqlite-item-store.js";
import type { PluginUniqueIdentifier } from "../src/domain/identifier.js";
import type { StrategySetting, UpgradeMode, UpgradeStrategy } from "../src/domain/upgrade-strategy.js";
import type { ItemStore } from "../src/ports/item-store.js";
import { AutoUpgrade, type CycleReport, type UpgradeStarter } from "../src/services/auto-upgrade.js";
import { InstallTasks } from "../src/stores/install-tasks.js";
import { Installations } from "../src/stores/installations.js";
import { SnapshotCache, UpgradeRecords, UpgradeStrategies } from "../src/stores/upgrade-strategies.js";
import { FakeMarketplace, syntheticIdentifier } from "../test/support/fake-marketplace.js";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const value = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isInteger(value) || value < 0) throw new Error(`--${name} must be a non-negative integer`);
  return value;
}

const TENANTS = option("tenants", 1000);
const PLUGINS = option("plugins", 20);
const OTHER_PLUGINS = option("other-plugins", 5000);
const TRIALS = Math.max(1, option("trials", 3));
const TIME_OF_DAY = 3 * 3600 + 5 * 60; // 03:05 UTC
const RUN_AT = new Date("2031-03-01T02:59:30Z");
const LATEST = "1.4.2";
const INSTALLED_VERSIONS = ["1.4.2", "1.4.0", "1.3.9", "0.9.0"];

/** Counts store calls on their way through; adds nothing else. */
function counted(store: ItemStore) {
  const counts = { get: 0, query: 0, write: 0 };
  const wrapped: ItemStore = {
    get: (key) => (counts.get++, store.get(key)),
    query: (pk, options) => (counts.query++, store.query(pk, options)),
    write: (ops) => (counts.write++, store.write(ops)),
  };
  return { store: wrapped, counts };
}

function strategyOf(i: number, plugins: string[]): UpgradeStrategy {
  const settings: StrategySetting[] = [
    "fix_only",
    "fix_only",
    "fix_only",
    "fix_only",
    "latest",
    "latest",
    "latest",
    "latest",
    "latest",
    "disabled",
  ];
  const modes: UpgradeMode[] = ["all", "exclude", "partial"];
  const mode = modes[i % 3] as UpgradeMode;
  return {
    strategy_setting: settings[i % 10] as StrategySetting,
    upgrade_time_of_day: TIME_OF_DAY,
    upgrade_mode: mode,
    exclude_plugins: mode === "exclude" ? plugins.slice(0, 3) : [],
    include_plugins: mode === "partial" ? plugins.slice(0, Math.ceil(plugins.length / 2)) : [],
  };
}

async function seed(file: string, plugins: string[], latestUid: Map<string, PluginUniqueIdentifier>): Promise<void> {
  const items = new SqliteItemStore({ filename: file });
  const installations = new Installations(items);
  const strategies = new UpgradeStrategies(items);
  const now = new Date().toISOString();
  for (let t = 0; t < TENANTS; t++) {
    const tenant = `bench-tenant-${String(t).padStart(5, "0")}`;
    for (let p = 0; p < plugins.length; p++) {
      const pluginId = plugins[p] as string;
      const version = INSTALLED_VERSIONS[(t + p) % INSTALLED_VERSIONS.length] as string;
      const uid = version === LATEST ? latestUid.get(pluginId)! : syntheticIdentifier(pluginId, version);
      await installations.create({
        id: `${tenant}-${p}`,
        tenant_id: tenant,
        plugin_id: pluginId,
        plugin_unique_identifier: uid,
        runtime_type: "local",
        source: "marketplace",
        meta: {},
        endpoints_setups: 0,
        endpoints_active: 0,
        created_at: now,
        updated_at: now,
      });
    }
    await strategies.set(tenant, strategyOf(t, plugins));
  }
  items.close();
}

async function trial(template: string, dir: string, index: number, marketplaceUrl: string) {
  const file = join(dir, `trial-${index}.sqlite`);
  copyFileSync(template, file);
  const sqlite = new SqliteItemStore({ filename: file });
  const { store, counts } = counted(sqlite);
  let upgrades = 0;
  const countingStarter: UpgradeStarter = { start: async () => ({ task_id: `counted-${++upgrades}` }) };
  const service = new AutoUpgrade({
    strategies: new UpgradeStrategies(store),
    records: new UpgradeRecords(store),
    snapshots: new SnapshotCache(store, marketplaceUrl),
    installations: new Installations(store),
    tasks: new InstallTasks(store),
    marketplace: new HttpMarketplace({ marketplaceUrl, githubUrl: "http://127.0.0.1:9", maxPackageBytes: 1 << 20 }),
    upgrades: countingStarter,
    options: { snapshotCacheSeconds: 900, leaseSeconds: 3600 },
  });
  const started = process.hrtime.bigint();
  const report: CycleReport = await service.runCycle({ at: RUN_AT });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  sqlite.close();
  return { ms, report, upgrades, counts };
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "auto-upgrade-bench-"));
  const market = await FakeMarketplace.start();
  try {
    const plugins = Array.from({ length: PLUGINS }, (_, i) => `bench/plugin-${String(i).padStart(2, "0")}`);
    const latestUid = new Map(plugins.map((p) => [p, syntheticIdentifier(p, LATEST)]));
    for (const uid of latestUid.values()) market.setLatest(uid);
    market.addOtherPlugins(OTHER_PLUGINS);

    const template = join(dir, "seeded.sqlite");
    const seedStart = Date.now();
    await seed(template, plugins, latestUid);
    process.stderr.write(`seeded ${TENANTS} tenants x ${PLUGINS} plugins in ${Date.now() - seedStart} ms\n`);

    const trials = [];
    for (let i = 0; i < TRIALS; i++) {
      market.resetCounters();
      const t = await trial(template, dir, i, market.url);
      trials.push({ ...t, snapshotRequests: market.requests.snapshot });
      process.stderr.write(
        `trial ${i + 1}: ${t.ms.toFixed(1)} ms, ${t.report.tenants} tenants, ${t.upgrades} upgrades\n`,
      );
    }
    const sorted = trials.map((t) => t.ms).sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)] as number;
    const first = trials[0]!;
    const result = {
      benchmark: "auto-upgrade-cycle",
      date: new Date().toISOString(),
      machine: {
        cpus: cpus().length,
        cpu: cpus()[0]?.model ?? "unknown",
        node: process.version,
        platform: process.platform,
      },
      setup: {
        tenants: TENANTS,
        plugins_per_tenant: PLUGINS,
        installations: TENANTS * PLUGINS,
        snapshot_entries: PLUGINS + OTHER_PLUGINS,
        store: "SQLite (local daemon store), fresh copy per trial",
        marketplace: "fake marketplace over loopback HTTP",
        all_tenants_in_one_slot: true,
        strategies:
          "per 10 tenants: 4 fix_only, 5 latest, 1 disabled; modes all/exclude(3 plugins)/partial(half) in turn",
        installed_versions: INSTALLED_VERSIONS,
        marketplace_latest: LATEST,
        concurrency: 8,
      },
      measured:
        "AutoUpgrade.runCycle: slot claim, index queries, snapshot fetch over HTTP + cache write, per-tenant installation listing, policy decisions, lease writes, last-check records",
      stand_in: "upgrades are counted instead of executed (no install task is created or queued)",
      trials_ms: trials.map((t) => Math.round(t.ms * 10) / 10),
      median_ms: Math.round(median * 10) / 10,
      per_tenant_ms: Math.round((median / TENANTS) * 1000) / 1000,
      tenants_checked: first.report.tenants,
      tenants_disabled_not_read: TENANTS - first.report.tenants,
      decisions: first.report.tenants * PLUGINS,
      upgrades_counted: first.upgrades,
      snapshot_requests_per_cycle: first.snapshotRequests,
      store_calls: first.counts,
    };
    const out = join(repoRoot, "bench", "results", "auto-upgrade-cycle.json");
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await market.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
