/**
 * Auto-upgrade persistence (docs/auto-upgrade.md, "Stored items"):
 * - `UpgradeStrategies`: one strategy per tenant, indexed on gsi1 by its 15-minute slot of the day
 *   (sharded) so the checker reads only the tenants that are due; disabled strategies are left
 *   out of the index altogether.
 * - `UpgradeRecords`: the per-tenant last-check record, the upgrade leases that keep overlapping
 *   checks from starting the same upgrade twice, and the claims of check slots.
 * - `SnapshotCache`: the marketplace snapshot, kept for a few minutes in chunked items (no Redis).
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import {
  SLOTS_PER_DAY,
  STRATEGY_SETTINGS,
  slotOfTimeOfDay,
  UPGRADE_MODES,
  type UpgradeStrategy,
} from "../domain/upgrade-strategy.js";
import { ConditionFailedError, type Item, type ItemStore } from "../ports/item-store.js";
import type { MarketplaceSnapshotEntry } from "../ports/marketplace.js";
import { keys } from "./keys.js";

/** Index shards per slot. Changing it needs a re-index, so it is a constant. */
export const SLOT_SHARDS = 8;

const strategySchema = z.object({
  strategy_setting: z.enum(STRATEGY_SETTINGS),
  upgrade_time_of_day: z.number().int().min(0).max(86_399),
  upgrade_mode: z.enum(UPGRADE_MODES),
  exclude_plugins: z.array(z.string()),
  include_plugins: z.array(z.string()),
});

const storedStrategySchema = strategySchema.extend({
  tenant_id: z.string(),
  created_at: z.string(),
  updated_at: z.string(),
});

export type StoredStrategyData = z.infer<typeof storedStrategySchema>;

export interface StoredStrategy {
  strategy: StoredStrategyData;
  version: number;
}

export interface DueTenant {
  tenant_id: string;
  strategy: UpgradeStrategy;
}

/** FNV-1a of the tenant id, so a tenant always lands in the same shard. */
export function shardOf(tenantId: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < tenantId.length; i++) {
    hash ^= tenantId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % SLOT_SHARDS;
}

const pickStrategy = (s: UpgradeStrategy): UpgradeStrategy => ({
  strategy_setting: s.strategy_setting,
  upgrade_time_of_day: s.upgrade_time_of_day,
  upgrade_mode: s.upgrade_mode,
  exclude_plugins: s.exclude_plugins,
  include_plugins: s.include_plugins,
});

export class UpgradeStrategies {
  constructor(private readonly items: ItemStore) {}

  async get(tenantId: string): Promise<StoredStrategy | undefined> {
    const item = await this.items.get(keys.upgradeStrategy(tenantId));
    return item ? { strategy: storedStrategySchema.parse(item.data), version: item.version ?? 0 } : undefined;
  }

  /** Replaces the tenant's strategy. */
  set(tenantId: string, strategy: UpgradeStrategy, now = new Date()): Promise<StoredStrategyData> {
    return this.update(tenantId, () => strategy, now);
  }

  /**
   * Read-modify-write under a version condition, retried when another writer got in between, so
   * two concurrent "exclude plugin" calls both land.
   */
  async update(
    tenantId: string,
    change: (current: UpgradeStrategy | undefined) => UpgradeStrategy,
    now = new Date(),
  ): Promise<StoredStrategyData> {
    for (let attempt = 0; ; attempt++) {
      const current = await this.get(tenantId);
      const next: StoredStrategyData = {
        ...pickStrategy(strategySchema.parse(change(current && pickStrategy(current.strategy)))),
        tenant_id: tenantId,
        created_at: current?.strategy.created_at ?? now.toISOString(),
        updated_at: now.toISOString(),
      };
      const enabled = next.strategy_setting !== "disabled";
      const slot = slotOfTimeOfDay(next.upgrade_time_of_day);
      const item: Item = {
        ...keys.upgradeStrategy(tenantId),
        ...(enabled && keys.upgradeSlot(slot, shardOf(tenantId), tenantId)),
        data: next,
      };
      try {
        await this.items.write([
          {
            op: "put",
            item,
            condition: current ? { kind: "versionIs", version: current.version } : { kind: "notExists" },
          },
        ]);
        return next;
      } catch (err) {
        if (!(err instanceof ConditionFailedError) || attempt >= 9) throw err;
      }
    }
  }

  /**
   * Enabled strategies of one slot of the day and one shard, in tenant id order. The index is
   * eventually consistent on DynamoDB, so entries are checked against the item's own data.
   */
  async due(slotOfDay: number, shard: number): Promise<DueTenant[]> {
    if (slotOfDay < 0 || slotOfDay >= SLOTS_PER_DAY) throw new RangeError(`slot ${slotOfDay} is not a slot of the day`);
    const rows = await this.items.query(keys.upgradeSlotPartition(slotOfDay, shard), { index: "gsi1" });
    const due: DueTenant[] = [];
    for (const row of rows) {
      const parsed = storedStrategySchema.safeParse(row.data);
      if (!parsed.success) continue;
      const s = parsed.data;
      if (s.strategy_setting === "disabled" || slotOfTimeOfDay(s.upgrade_time_of_day) !== slotOfDay) continue;
      due.push({ tenant_id: s.tenant_id, strategy: pickStrategy(s) });
    }
    return due.sort((a, b) => (a.tenant_id < b.tenant_id ? -1 : a.tenant_id > b.tenant_id ? 1 : 0));
  }
}

// ---------------------------------------------------------------------------------------------

const lastCheckSchema = z.object({
  tenant_id: z.string(),
  run_id: z.string(),
  trigger: z.enum(["schedule", "manual"]),
  checked_at: z.string(),
  /** Slot of the day (0–95) the scheduled check ran for; absent for manual checks. */
  slot: z.number().int().optional(),
  /** ok: checked (upgrades may have started); skipped: nothing could be decided; failed: errors. */
  status: z.enum(["ok", "skipped", "failed"]),
  message: z.string(),
  strategy_setting: z.enum(STRATEGY_SETTINGS),
  upgrades: z.array(z.object({ plugin_id: z.string(), from: z.string(), to: z.string(), task_id: z.string() })),
  failures: z.array(z.object({ plugin_id: z.string(), from: z.string(), to: z.string(), message: z.string() })),
  skipped: z.array(z.object({ plugin_id: z.string(), reason: z.string(), latest: z.string().optional() })),
});

export type LastCheck = z.infer<typeof lastCheckSchema>;

export class UpgradeRecords {
  constructor(private readonly items: ItemStore) {}

  async lastCheck(tenantId: string): Promise<LastCheck | undefined> {
    const item = await this.items.get(keys.upgradeLastCheck(tenantId));
    return item ? lastCheckSchema.parse(item.data) : undefined;
  }

  async saveLastCheck(check: LastCheck): Promise<void> {
    await this.items.write([
      { op: "put", item: { ...keys.upgradeLastCheck(check.tenant_id), data: lastCheckSchema.parse(check) } },
    ]);
  }

  /**
   * Takes the lease on upgrading the tenant to `targetUid`; false when another check holds it.
   * The lease expires on its own, so an upgrade that failed is tried again by a later check.
   */
  async acquireLease(
    tenantId: string,
    targetUid: string,
    holder: { run_id: string; from: string },
    ttlSeconds: number,
    now = new Date(),
  ): Promise<boolean> {
    try {
      await this.items.write([
        {
          op: "put",
          item: {
            ...keys.upgradeLease(tenantId, targetUid),
            expiresAt: Math.floor(now.getTime() / 1000) + ttlSeconds,
            data: { ...holder, acquired_at: now.toISOString() },
          },
          condition: { kind: "notExists" },
        },
      ]);
      return true;
    } catch (err) {
      if (err instanceof ConditionFailedError) return false;
      throw err;
    }
  }

  async releaseLease(tenantId: string, targetUid: string): Promise<void> {
    await this.items.write([{ op: "delete", key: keys.upgradeLease(tenantId, targetUid) }]);
  }

  /** The newest absolute slot any check claimed (claims expire after two days). */
  async lastClaimedSlot(): Promise<number | undefined> {
    const [item] = await this.items.query(keys.upgradeSlotClaims, {
      skPrefix: keys.upgradeSlotClaimPrefix,
      descending: true,
      limit: 1,
    });
    return item ? Number(item.sk.slice(keys.upgradeSlotClaimPrefix.length)) : undefined;
  }

  /** Claims a slot for one run; false when another run already has it. */
  async claimSlot(absoluteSlot: number, runId: string, now = new Date()): Promise<boolean> {
    try {
      await this.items.write([
        {
          op: "put",
          item: {
            ...keys.upgradeSlotClaim(absoluteSlot),
            expiresAt: Math.floor(now.getTime() / 1000) + 2 * 86_400,
            data: { run_id: runId, claimed_at: now.toISOString() },
          },
          condition: { kind: "notExists" },
        },
      ]);
      return true;
    } catch (err) {
      if (err instanceof ConditionFailedError) return false;
      throw err;
    }
  }
}

// ---------------------------------------------------------------------------------------------

/** Entries per chunk item: ~150 bytes each keeps a chunk far below DynamoDB's 400 KB item limit. */
const CHUNK_ENTRIES = 500;
/** DynamoDB's transaction limit. */
const MAX_BATCH = 100;

const pointerSchema = z.object({
  snapshot_id: z.string(),
  fetched_at: z.string(),
  count: z.number().int(),
  chunks: z.number().int(),
});
const chunkSchema = z.object({ entries: z.array(z.tuple([z.string(), z.string(), z.string()])) });

export interface CachedSnapshot {
  fetched_at: string;
  entries: MarketplaceSnapshotEntry[];
}

export class SnapshotCache {
  private readonly marketplaceKey: string;

  constructor(
    private readonly items: ItemStore,
    marketplaceUrl: string,
  ) {
    this.marketplaceKey = createHash("sha256").update(marketplaceUrl).digest("hex").slice(0, 16);
  }

  /** The cached snapshot, or undefined when there is none, it expired, or it is incomplete. */
  async get(): Promise<CachedSnapshot | undefined> {
    const pointerItem = await this.items.get(keys.marketplaceSnapshot(this.marketplaceKey));
    const pointer = pointerItem && pointerSchema.safeParse(pointerItem.data);
    if (!pointer?.success) return undefined;
    const chunks = await this.items.query(keys.marketplaceSnapshotChunks(pointer.data.snapshot_id));
    if (chunks.length !== pointer.data.chunks) return undefined;
    const entries: MarketplaceSnapshotEntry[] = [];
    for (const chunk of chunks) {
      const parsed = chunkSchema.safeParse(chunk.data);
      if (!parsed.success) return undefined;
      for (const [plugin_id, latest_version, latest_package_identifier] of parsed.data.entries) {
        entries.push({ plugin_id, latest_version, latest_package_identifier });
      }
    }
    return entries.length === pointer.data.count ? { fetched_at: pointer.data.fetched_at, entries } : undefined;
  }

  /** Stores a snapshot for `ttlSeconds`: the chunks first, then the pointer that makes them visible. */
  async put(
    snapshotId: string,
    entries: readonly MarketplaceSnapshotEntry[],
    ttlSeconds: number,
    now = new Date(),
  ): Promise<void> {
    const expiresAt = Math.floor(now.getTime() / 1000) + ttlSeconds;
    const chunkItems: Item[] = [];
    for (let i = 0; i < entries.length; i += CHUNK_ENTRIES) {
      chunkItems.push({
        ...keys.marketplaceSnapshotChunk(snapshotId, chunkItems.length),
        // A little longer than the pointer, so a reader holding the pointer still finds its chunks.
        expiresAt: expiresAt + 120,
        data: {
          entries: entries
            .slice(i, i + CHUNK_ENTRIES)
            .map((e) => [e.plugin_id, e.latest_version, e.latest_package_identifier]),
        },
      });
    }
    for (let i = 0; i < chunkItems.length; i += MAX_BATCH) {
      await this.items.write(chunkItems.slice(i, i + MAX_BATCH).map((item) => ({ op: "put" as const, item })));
    }
    await this.items.write([
      {
        op: "put",
        item: {
          ...keys.marketplaceSnapshot(this.marketplaceKey),
          expiresAt,
          data: {
            snapshot_id: snapshotId,
            fetched_at: now.toISOString(),
            count: entries.length,
            chunks: chunkItems.length,
          },
        },
      },
    ]);
  }
}
