/**
 * Claims on a plugin runtime that tenants share (one per unique identifier). Installed tenants
 * are the package's USE# items, written atomically with each installation; this one item per
 * package adds what those cannot show: installs still in progress (their installation is
 * written only once the runtime is ready) and a removal in progress. Every change is a
 * conditional write on the item's version, on SQLite and DynamoDB alike, so an install in one
 * tenant racing an uninstall in another either sees the removal and waits for it, or makes the
 * uninstall keep the runtime: never an installation whose runtime was just deleted.
 */
import { z } from "zod";
import type { PluginUniqueIdentifier } from "../domain/identifier.js";
import { ConditionFailedError, type Item, type ItemStore } from "../ports/item-store.js";
import { keys } from "./keys.js";

const claimsSchema = z.object({
  /** tenant id → when its install started (ISO). */
  installing: z.record(z.string(), z.string()).default({}),
  /** When a removal started (ISO); it is also the removal's token. */
  removing: z.string().optional(),
});
type Claims = z.infer<typeof claimsSchema>;

export interface RuntimeClaimsOptions {
  /** An install claim older than this is a leftover of a dead worker (the install timeout). */
  installLeaseMs: number;
  /** A removal older than this is a leftover of a dead worker. */
  removalLeaseMs: number;
  /** Poll interval while waiting for a removal to end. */
  pollMs?: number;
}

const MAX_ATTEMPTS = 50;

export class RuntimeClaims {
  constructor(
    private readonly items: ItemStore,
    private readonly options: RuntimeClaimsOptions,
  ) {}

  /** Records that `tenantId` is installing `uid`; waits while the runtime is being removed. */
  async claim(uid: PluginUniqueIdentifier, tenantId: string): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const { item, claims } = await this.read(uid);
      if (claims.removing && !this.expired(claims.removing, this.options.removalLeaseMs)) {
        await sleep(this.options.pollMs ?? 100);
        continue;
      }
      const next: Claims = { installing: { ...claims.installing, [tenantId]: new Date().toISOString() } };
      if (await this.put(uid, item, next)) return;
      if (attempt >= MAX_ATTEMPTS) throw new Error(`could not claim the runtime of ${uid}: too much contention`);
    }
  }

  /** The tenant's install of `uid` is over, whether its installation was written or not. */
  async settle(uid: PluginUniqueIdentifier, tenantId: string): Promise<void> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const { item, claims } = await this.read(uid);
      if (!item || !(tenantId in claims.installing)) return;
      const { [tenantId]: _, ...installing } = claims.installing;
      if (await this.put(uid, item, { ...claims, installing })) return;
    }
  }

  /**
   * Starts removing the runtime if no tenant has it installed and no install is in progress.
   * Returns the removal's token, to pass to `removalDone` once the runtime is gone, or
   * undefined when the runtime is in use (or someone else is removing it).
   */
  async beginRemovalIfUnused(uid: PluginUniqueIdentifier): Promise<string | undefined> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      // One query reads the package's partition: its USE# items and the claims item together.
      const partition = await this.items.query(keys.runtimeClaims(uid).pk);
      const item = partition.find((i) => i.sk === keys.runtimeClaims(uid).sk);
      const claims = claimsOf(item);
      const inUse = partition.some((i) => i.sk.startsWith(keys.packageUsePrefix));
      const installing = Object.values(claims.installing).some(
        (since) => !this.expired(since, this.options.installLeaseMs),
      );
      const removing = claims.removing && !this.expired(claims.removing, this.options.removalLeaseMs);
      if (inUse || installing || removing) return undefined;
      const token = new Date().toISOString();
      if (await this.put(uid, item, { installing: {}, removing: token })) return token;
    }
    return undefined;
  }

  /** The removal that `token` started is over: installs may go ahead. */
  async removalDone(uid: PluginUniqueIdentifier, token: string): Promise<void> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const { item, claims } = await this.read(uid);
      if (!item || claims.removing !== token) return;
      try {
        await this.items.write([
          { op: "delete", key: keys.runtimeClaims(uid), condition: { kind: "versionIs", version: item.version ?? 0 } },
        ]);
        return;
      } catch (err) {
        if (!(err instanceof ConditionFailedError)) throw err;
      }
    }
  }

  private async read(uid: PluginUniqueIdentifier): Promise<{ item: Item | undefined; claims: Claims }> {
    const item = await this.items.get(keys.runtimeClaims(uid));
    return { item, claims: claimsOf(item) };
  }

  /** Writes the next claims under the version read; false when someone wrote in between. */
  private async put(uid: PluginUniqueIdentifier, current: Item | undefined, next: Claims): Promise<boolean> {
    const empty = Object.keys(next.installing).length === 0 && !next.removing;
    try {
      if (empty && current) {
        await this.items.write([
          {
            op: "delete",
            key: keys.runtimeClaims(uid),
            condition: { kind: "versionIs", version: current.version ?? 0 },
          },
        ]);
      } else if (!empty) {
        await this.items.write([
          {
            op: "put",
            item: { ...keys.runtimeClaims(uid), data: next, version: current?.version },
            condition: current ? { kind: "versionIs", version: current.version ?? 0 } : { kind: "notExists" },
          },
        ]);
      }
      return true;
    } catch (err) {
      if (err instanceof ConditionFailedError) return false;
      throw err;
    }
  }

  private expired(sinceIso: string, leaseMs: number): boolean {
    return Date.now() - Date.parse(sinceIso) > leaseMs;
  }
}

const claimsOf = (item: Item | undefined): Claims => claimsSchema.parse(item?.data ?? {});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
