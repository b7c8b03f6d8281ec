/**
 * Per-tenant remote-debugging keys: a plugin started with INSTALL_METHOD=remote presents one in
 * its handshake, and the key names the tenant it is installed for. A tenant keeps its key across
 * calls (two items, written together: tenant → key and key → tenant).
 */
import { randomUUID } from "node:crypto";
import { ConditionFailedError, type ItemStore } from "../ports/item-store.js";
import { keys } from "./keys.js";

export class DebuggingKeys {
  constructor(private readonly items: ItemStore) {}

  /** The tenant's key, created on first use. */
  async keyFor(tenantId: string): Promise<string> {
    const existing = await this.items.get(keys.debuggingKey(tenantId));
    if (typeof existing?.data.key === "string") return existing.data.key;
    const key = randomUUID();
    try {
      await this.items.write([
        { op: "put", item: { ...keys.debuggingKey(tenantId), data: { key } }, condition: { kind: "notExists" } },
        { op: "put", item: { ...keys.debuggingKeyLookup(key), data: { tenant_id: tenantId } } },
      ]);
      return key;
    } catch (err) {
      // A concurrent call created the tenant's key first: use that one.
      if (!(err instanceof ConditionFailedError)) throw err;
      const winner = await this.items.get(keys.debuggingKey(tenantId));
      if (typeof winner?.data.key !== "string") throw err;
      return winner.data.key;
    }
  }

  /** The tenant a key belongs to; undefined for an unknown key. */
  async tenantOf(key: string): Promise<string | undefined> {
    if (!key) return undefined;
    const item = await this.items.get(keys.debuggingKeyLookup(key));
    return typeof item?.data.tenant_id === "string" ? item.data.tenant_id : undefined;
  }
}
