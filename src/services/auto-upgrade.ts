/**
 * The auto-upgrade check (docs/auto-upgrade.md). Every 15 minutes a run takes the tenants whose
 * `upgrade_time_of_day` falls in the slot being handled, reads the marketplace snapshot once
 * (cached in the item store for a few minutes), decides per installed plugin with the pure policy
 * (src/domain/upgrade-policy.ts) and starts each upgrade as an ordinary install task through the
 * installer, under a lease per tenant + target package so overlapping checks start it once.
 *
 * A run stops between batches when its caller says so (the Lambda's remaining time) and returns a
 * cursor; the caller continues from it, in a new invocation on AWS.
 */
import { v7 as uuidv7 } from "uuid";
import type { PluginUniqueIdentifier } from "../domain/identifier.js";
import { type LatestRelease, planUpgrades, releaseFromMarketplace } from "../domain/upgrade-policy.js";
import {
  absoluteSlotAt,
  slotOfDay,
  slotsToRun,
  slotWindow,
  UNSET_STRATEGY,
  type UpgradeStrategy,
} from "../domain/upgrade-strategy.js";
import { logger } from "../logger.js";
import { metrics } from "../observability/metrics.js";
import type { Marketplace } from "../ports/marketplace.js";
import type { InstallTasks } from "../stores/install-tasks.js";
import type { Installations } from "../stores/installations.js";
import {
  type DueTenant,
  type LastCheck,
  SLOT_SHARDS,
  type SnapshotCache,
  type UpgradeRecords,
  type UpgradeStrategies,
} from "../stores/upgrade-strategies.js";
import type { Installer } from "./installer.js";

/** Starts one upgrade; the real one creates an install task, the benchmark only counts. */
export interface UpgradeStarter {
  start(tenantId: string, fromUid: PluginUniqueIdentifier, toUid: PluginUniqueIdentifier): Promise<{ task_id: string }>;
}

/** Upgrades the way Dify's task does: count the install on the marketplace, then `install/upgrade`. */
export function installerUpgrades(
  installer: Pick<Installer, "upgrade">,
  marketplace: Pick<Marketplace, "recordInstall">,
): UpgradeStarter {
  return {
    async start(tenantId, fromUid, toUid) {
      try {
        await marketplace.recordInstall(toUid);
      } catch (err) {
        logger.warn({ uid: toUid, err: (err as Error).message }, "marketplace install count failed");
      }
      const started = await installer.upgrade(tenantId, fromUid, toUid, "marketplace", {
        plugin_unique_identifier: toUid,
      });
      return { task_id: started.task_id };
    },
  };
}

export interface AutoUpgradeOptions {
  /** How long a fetched snapshot is reused by other runs; 0 fetches it on every run. */
  snapshotCacheSeconds: number;
  /** How long an upgrade lease blocks another start of the same upgrade. */
  leaseSeconds: number;
  /** Tenants checked at once. */
  concurrency?: number;
  /** Missed slots a run catches up on. */
  maxCatchUpSlots?: number;
}

export interface AutoUpgradeDeps {
  strategies: UpgradeStrategies;
  records: UpgradeRecords;
  snapshots: SnapshotCache;
  installations: Pick<Installations, "list" | "get">;
  tasks: Pick<InstallTasks, "get">;
  marketplace: Pick<Marketplace, "snapshot">;
  upgrades: UpgradeStarter;
  options: AutoUpgradeOptions;
  now?: () => Date;
}

/** Where an unfinished run continues: the slots still to do, the shard, the last tenant done. */
export interface CycleCursor {
  run_id: string;
  slots: number[];
  shard: number;
  after?: string;
}

export interface CycleInput {
  /** The time the run is for (the scheduled event's time); defaults to now. */
  at?: Date;
  /** Handle exactly this absolute slot, without claiming it (manual runs). */
  forceSlot?: number;
  /** Continue an earlier run. */
  cursor?: CycleCursor;
  /** Asked between batches (after the first); true makes the run return a cursor. */
  shouldStop?: () => boolean;
}

export type SnapshotSource = "fetched" | "cached" | "unavailable" | "not-needed";

export interface CycleReport {
  run_id: string;
  /** Slots handled by this invocation, as dates and windows of seconds of the day. */
  slots: Array<{ absolute_slot: number; date: string; start: number; end: number }>;
  tenants: number;
  upgrades_started: number;
  /** Tenants whose check failed or could not start an upgrade. */
  failed_tenants: number;
  /** Tenants not checked because the marketplace snapshot was unavailable. */
  skipped_tenants: number;
  snapshot: SnapshotSource;
  snapshot_error?: string;
  done: boolean;
  cursor?: CycleCursor;
  elapsed_ms: number;
}

export interface UpgradeStatus {
  strategy: UpgradeStrategy;
  /** False when the tenant never saved a strategy (then nothing is upgraded). */
  configured: boolean;
  last_check:
    | (Omit<LastCheck, "upgrades"> & {
        upgrades: Array<LastCheck["upgrades"][number] & { status: string; message: string }>;
      })
    | null;
}

type SnapshotState =
  | { ok: true; source: "fetched" | "cached"; releases: Map<string, LatestRelease> }
  | { ok: false; error: string };

const describe = (err: unknown) => (err instanceof Error ? err.message : String(err));

export class AutoUpgrade {
  private readonly now: () => Date;
  private readonly concurrency: number;

  constructor(private readonly deps: AutoUpgradeDeps) {
    this.now = deps.now ?? (() => new Date());
    this.concurrency = Math.max(1, deps.options.concurrency ?? 8);
  }

  /** One scheduled run (or its continuation). */
  async runCycle(input: CycleInput = {}): Promise<CycleReport> {
    const started = Date.now();
    const run_id = input.cursor?.run_id ?? uuidv7();
    const slots = input.cursor ? input.cursor.slots : await this.slotsFor(input, run_id);
    const snapshot = this.lazySnapshot();
    const report: CycleReport = {
      run_id,
      slots: slots.map((s) => ({ absolute_slot: s, ...slotWindow(s) })),
      tenants: 0,
      upgrades_started: 0,
      failed_tenants: 0,
      skipped_tenants: 0,
      snapshot: "not-needed",
      done: true,
      elapsed_ms: 0,
    };
    let shard = input.cursor?.shard ?? 0;
    let after = input.cursor?.after;
    let batches = 0;
    const finish = () => {
      report.snapshot = snapshot.source();
      const error = snapshot.error();
      if (error) report.snapshot_error = error;
      report.elapsed_ms = Date.now() - started;
      logger.info(
        { ...report, cursor: undefined },
        report.done ? "auto-upgrade run finished" : "auto-upgrade run paused",
      );
      return report;
    };

    for (let s = 0; s < slots.length; s++) {
      const absolute = slots[s] as number;
      for (; shard < SLOT_SHARDS; shard++) {
        const due = (await this.deps.strategies.due(slotOfDay(absolute), shard)).filter(
          (t) => after === undefined || t.tenant_id > after,
        );
        for (let i = 0; i < due.length; i += this.concurrency) {
          if (batches > 0 && input.shouldStop?.()) {
            report.done = false;
            report.cursor = { run_id, slots: slots.slice(s), shard, ...(after !== undefined && { after }) };
            return finish();
          }
          const batch = due.slice(i, i + this.concurrency);
          const checks = await Promise.all(
            batch.map((t) => this.checkDue(t, snapshot.get, run_id, slotOfDay(absolute))),
          );
          for (const check of checks) {
            report.tenants++;
            report.upgrades_started += check.upgrades.length;
            if (check.status === "failed") report.failed_tenants++;
            if (check.status === "skipped") report.skipped_tenants++;
          }
          after = (batch[batch.length - 1] as DueTenant).tenant_id;
          batches++;
        }
        after = undefined;
      }
      shard = 0;
    }
    return finish();
  }

  /** Checks one tenant now, whatever its time of day (CLI `check-now`, management route). */
  async checkNow(tenantId: string): Promise<LastCheck> {
    const stored = await this.deps.strategies.get(tenantId);
    const strategy = stored ? stored.strategy : UNSET_STRATEGY;
    return this.checkTenant(tenantId, strategy, this.lazySnapshot().get, { run_id: uuidv7(), trigger: "manual" });
  }

  /** The tenant's strategy and last check, with the live state of the upgrades it started. */
  async status(tenantId: string): Promise<UpgradeStatus> {
    const [stored, last] = await Promise.all([
      this.deps.strategies.get(tenantId),
      this.deps.records.lastCheck(tenantId),
    ]);
    const strategy: UpgradeStrategy = stored
      ? {
          strategy_setting: stored.strategy.strategy_setting,
          upgrade_time_of_day: stored.strategy.upgrade_time_of_day,
          upgrade_mode: stored.strategy.upgrade_mode,
          exclude_plugins: stored.strategy.exclude_plugins,
          include_plugins: stored.strategy.include_plugins,
        }
      : UNSET_STRATEGY;
    if (!last) return { strategy, configured: stored !== undefined, last_check: null };
    const upgrades = await Promise.all(
      last.upgrades.map(async (u) => ({ ...u, ...(await this.upgradeState(tenantId, u)) })),
    );
    return { strategy, configured: stored !== undefined, last_check: { ...last, upgrades } };
  }

  private async upgradeState(
    tenantId: string,
    u: LastCheck["upgrades"][number],
  ): Promise<{ status: string; message: string }> {
    const stored = await this.deps.tasks.get(tenantId, u.task_id);
    const plugin = stored?.task.plugins.find((p) => p.plugin_unique_identifier === u.to);
    if (plugin) return { status: plugin.status, message: plugin.message };
    // Successful tasks expire after a few minutes; the installation tells what happened.
    const installation = await this.deps.installations.get(tenantId, u.plugin_id);
    if (installation?.installation.plugin_unique_identifier === u.to) return { status: "success", message: "upgraded" };
    return { status: "unknown", message: "the install task is gone and the plugin is not on this version" };
  }

  /** The slots a fresh run handles: its own, plus missed ones; each claimed so one run does it. */
  private async slotsFor(input: CycleInput, runId: string): Promise<number[]> {
    if (input.forceSlot !== undefined) return [input.forceSlot];
    const current = absoluteSlotAt(input.at ?? this.now());
    const candidates = slotsToRun(
      current,
      await this.deps.records.lastClaimedSlot(),
      this.deps.options.maxCatchUpSlots ?? 4,
    );
    const claimed: number[] = [];
    for (const slot of candidates) {
      if (await this.deps.records.claimSlot(slot, runId, this.now())) claimed.push(slot);
    }
    return claimed;
  }

  private async checkDue(
    t: DueTenant,
    snapshot: () => Promise<SnapshotState>,
    runId: string,
    slot: number,
  ): Promise<LastCheck> {
    return this.checkTenant(t.tenant_id, t.strategy, snapshot, { run_id: runId, trigger: "schedule", slot });
  }

  /** Decides and starts a tenant's upgrades, and records the outcome; never throws. */
  private async checkTenant(
    tenantId: string,
    strategy: UpgradeStrategy,
    snapshot: () => Promise<SnapshotState>,
    context: { run_id: string; trigger: LastCheck["trigger"]; slot?: number },
  ): Promise<LastCheck> {
    const check: LastCheck = {
      tenant_id: tenantId,
      ...context,
      checked_at: this.now().toISOString(),
      status: "ok",
      message: "",
      strategy_setting: strategy.strategy_setting,
      upgrades: [],
      failures: [],
      skipped: [],
    };
    try {
      if (strategy.strategy_setting === "disabled") {
        check.status = "skipped";
        check.message = "auto-upgrade is disabled for this workspace";
      } else {
        const state = await snapshot();
        if (!state.ok) {
          check.status = "skipped";
          check.message = `marketplace unavailable, nothing checked: ${state.error}`;
        } else {
          await this.upgradeTenant(check, strategy, state.releases);
        }
      }
    } catch (err) {
      check.status = "failed";
      check.message = `check failed: ${describe(err)}`;
    }
    try {
      await this.deps.records.saveLastCheck(check);
    } catch (err) {
      logger.error({ tenantId, err: describe(err) }, "could not record the auto-upgrade check");
      check.status = "failed";
    }
    metrics.autoUpgradeCheck({
      status: check.status,
      started: check.upgrades.length,
      failedToStart: check.failures.length,
      skipped: check.skipped.map((s) => s.reason),
    });
    return check;
  }

  private async upgradeTenant(check: LastCheck, strategy: UpgradeStrategy, releases: Map<string, LatestRelease>) {
    const tenantId = check.tenant_id;
    const installed = await this.deps.installations.list(tenantId);
    for (const decision of planUpgrades(strategy, installed, (id) => releases.get(id))) {
      if (decision.action === "skip") {
        check.skipped.push({
          plugin_id: decision.plugin_id,
          reason: decision.reason,
          ...(decision.latest && { latest: decision.latest }),
        });
        continue;
      }
      const leased = await this.deps.records.acquireLease(
        tenantId,
        decision.to,
        { run_id: check.run_id, from: decision.from },
        this.deps.options.leaseSeconds,
        this.now(),
      );
      if (!leased) {
        check.skipped.push({ plugin_id: decision.plugin_id, reason: "upgrade-already-started", latest: decision.to });
        continue;
      }
      try {
        const { task_id } = await this.deps.upgrades.start(tenantId, decision.from, decision.to);
        check.upgrades.push({ plugin_id: decision.plugin_id, from: decision.from, to: decision.to, task_id });
      } catch (err) {
        check.failures.push({
          plugin_id: decision.plugin_id,
          from: decision.from,
          to: decision.to,
          message: describe(err),
        });
        // Nothing started: let the next check try again.
        await this.deps.records.releaseLease(tenantId, decision.to).catch(() => undefined);
      }
    }
    const parts = [`${check.upgrades.length} upgrade(s) started`];
    if (check.failures.length > 0) parts.push(`${check.failures.length} could not start`);
    check.status = check.failures.length > 0 ? "failed" : "ok";
    check.message = parts.join(", ");
  }

  /** The run's snapshot: loaded on first need (a slot without tenants never fetches it), then shared. */
  private lazySnapshot() {
    let loading: Promise<SnapshotState> | undefined;
    let state: SnapshotState | undefined;
    return {
      get: () => (loading ??= this.loadSnapshot().then((s) => (state = s))),
      source: (): SnapshotSource => (!state ? "not-needed" : state.ok ? state.source : "unavailable"),
      error: () => (state && !state.ok ? state.error : undefined),
    };
  }

  private async loadSnapshot(): Promise<SnapshotState> {
    const cacheSeconds = this.deps.options.snapshotCacheSeconds;
    if (cacheSeconds > 0) {
      const cached = await this.deps.snapshots.get().catch((err: unknown) => {
        logger.warn({ err: describe(err) }, "could not read the cached marketplace snapshot");
        return undefined;
      });
      if (cached) return { ok: true, source: "cached", releases: releasesOf(cached.entries) };
    }
    let entries: Awaited<ReturnType<Marketplace["snapshot"]>>;
    try {
      entries = await this.deps.marketplace.snapshot();
    } catch (err) {
      logger.warn({ err: describe(err) }, "marketplace snapshot unavailable: auto-upgrade cycle skipped");
      return { ok: false, error: describe(err) };
    }
    if (cacheSeconds > 0) {
      await this.deps.snapshots.put(uuidv7(), entries, cacheSeconds, this.now()).catch((err: unknown) => {
        logger.warn({ err: describe(err) }, "could not cache the marketplace snapshot");
      });
    }
    return { ok: true, source: "fetched", releases: releasesOf(entries) };
  }
}

function releasesOf(entries: ReadonlyArray<Parameters<typeof releaseFromMarketplace>[0]>): Map<string, LatestRelease> {
  const releases = new Map<string, LatestRelease>();
  for (const entry of entries) {
    const release = releaseFromMarketplace(entry);
    if (release) releases.set(release.plugin_id, release);
  }
  return releases;
}

/**
 * The local daemon's schedule: a run at start (the current slot, if no run took it yet), then one
 * 30 s before each quarter hour, so each run takes the coming slot like Dify's `now - 30`.
 */
export function startAutoUpgradeTimer(service: Pick<AutoUpgrade, "runCycle">): { stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let running: Promise<unknown> = Promise.resolve();
  const run = () => {
    running = service
      .runCycle({ at: new Date() })
      .catch((err: unknown) => logger.error({ err: describe(err) }, "auto-upgrade run failed"));
    void running.finally(schedule);
  };
  const schedule = () => {
    if (stopped) return;
    const nowMs = Date.now();
    const period = 900_000;
    let next = Math.ceil((nowMs + 30_000) / period) * period - 30_000;
    if (next - nowMs < 1_000) next += period;
    timer = setTimeout(run, next - nowMs);
    timer.unref();
  };
  run();
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
