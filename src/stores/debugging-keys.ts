/**
 * Per-tenant remote-debugging keys: a plugin started with INSTALL_METHOD=remote presents one in
 * its handshake, and the key names the tenant it is installed for. A tenant keeps its key across
 * calls (two items, written together: tenant → key and key → tenant).
 *
 * Keys expire two hours after the tenant last asked for one, as upstream's
 * CONNECTION_KEY_EXPIRE_TIME (internal/service/debugging_service/connection_key.go,
 * langgenius/dify-plugin-daemon@bdb5642a): asking again extends both items.
 */
import { randomUUID } from "node:crypto";
import { ConditionFailedError, type ItemStore } from "../ports/item-store.js";
import { keys } from "./keys.js";

export const DEBUGGING_KEY_LIFETIME_SECONDS = 2 * 60 * 60;

export class DebuggingKeys {
  constructor(
    private readonly items: ItemStore,
    private readonly nowMs: () => number = Date.now,
  ) {}

  /** The tenant's key, created on first use; every call restarts its two hours. */
  async keyFor(tenantId: string): Promise<string> {
    const existing = await this.items.get(keys.debuggingKey(tenantId));
    const expiresAt = Math.floor(this.nowMs() / 1000) + DEBUGGING_KEY_LIFETIME_SECONDS;
    if (typeof existing?.data.key === "string") {
      await this.write(tenantId, existing.data.key, expiresAt, {
        kind: "versionIs",
        version: existing.version ?? 0,
      }).catch((err) => {
        // A concurrent call refreshed or replaced it: its answer is as good as ours.
        if (!(err instanceof ConditionFailedError)) throw err;
      });
      return existing.data.key;
    }
    const key = randomUUID();
    try {
      await this.write(tenantId, key, expiresAt, { kind: "notExists" });
      return key;
    } catch (err) {
      // A concurrent call created the tenant's key first: use that one.
      if (!(err instanceof ConditionFailedError)) throw err;
      const winner = await this.items.get(keys.debuggingKey(tenantId));
      if (typeof winner?.data.key !== "string") throw err;
      return winner.data.key;
    }
  }

  /** The tenant a key belongs to; undefined for an unknown or expired key. */
  async tenantOf(key: string): Promise<string | undefined> {
    if (!key) return undefined;
    const item = await this.items.get(keys.debuggingKeyLookup(key));
    return typeof item?.data.tenant_id === "string" ? item.data.tenant_id : undefined;
  }

  private write(
    tenantId: string,
    key: string,
    expiresAt: number,
    condition: { kind: "notExists" } | { kind: "versionIs"; version: number },
  ) {
    return this.items.write([
      { op: "put", item: { ...keys.debuggingKey(tenantId), expiresAt, data: { key } }, condition },
      { op: "put", item: { ...keys.debuggingKeyLookup(key), expiresAt, data: { tenant_id: tenantId } } },
    ]);
  }
}
