/**
 * Plugins' key-value storage (the SDK's `session.storage`), per tenant and plugin id. Each key is
 * one item; values up to INLINE_MAX_BYTES live in the item, larger ones in the blob store under a
 * fresh name. A usage item holds the partition's total size: every set and delete rewrites it in
 * the same atomic write as the key, conditioned on both versions, so the size cap holds under
 * concurrent writers and a failed write leaves neither a value nor a count behind.
 */
import { z } from "zod";
import { pluginStorageBlobKey } from "../domain/blob-keys.js";
import type { BlobStore } from "../ports/blob-store.js";
import { ConditionFailedError, type ItemStore, type WriteOp } from "../ports/item-store.js";
import { keys } from "./keys.js";

/** Values above this go to the blob store (DynamoDB items are capped at 400 KB). */
export const INLINE_MAX_BYTES = 64 * 1024;
const ATTEMPTS = 8;

const entrySchema = z.object({
  size: z.number().int().nonnegative(),
  /** base64 of the value, when stored inline. */
  value: z.string().optional(),
  /** Blob key of the value, when stored in the blob store. */
  blob: z.string().optional(),
});
const usageSchema = z.object({ size: z.number().int() });

type Entry = z.infer<typeof entrySchema>;

/** The value would take the plugin's storage past its cap; nothing was written. */
export class StorageFullError extends Error {
  constructor() {
    super("allocated size is greater than max storage size");
    this.name = "StorageFullError";
  }
}

export class PluginStorage {
  constructor(
    private readonly items: ItemStore,
    private readonly blobs: BlobStore,
  ) {}

  async get(tenantId: string, pluginId: string, key: string): Promise<Buffer | undefined> {
    const item = await this.items.get(keys.storageEntry(tenantId, pluginId, key));
    if (!item) return undefined;
    const entry = entrySchema.parse(item.data);
    if (entry.value !== undefined) return Buffer.from(entry.value, "base64");
    const bytes = entry.blob ? await this.blobs.get(entry.blob) : undefined;
    return bytes ? Buffer.from(bytes) : undefined;
  }

  async exists(tenantId: string, pluginId: string, key: string): Promise<boolean> {
    return (await this.items.get(keys.storageEntry(tenantId, pluginId, key))) !== undefined;
  }

  /** Bytes the plugin stores for this tenant (what the cap is checked against). */
  async usage(tenantId: string, pluginId: string): Promise<number> {
    const item = await this.items.get(keys.storageUsage(tenantId, pluginId));
    return item ? usageSchema.parse(item.data).size : 0;
  }

  /** Stores `value` unless the total would exceed `capBytes` (then StorageFullError). */
  async set(tenantId: string, pluginId: string, key: string, value: Uint8Array, capBytes: number): Promise<void> {
    const entryKey = keys.storageEntry(tenantId, pluginId, key);
    const usageKey = keys.storageUsage(tenantId, pluginId);
    for (let attempt = 1; ; attempt++) {
      const [entryItem, usageItem] = await Promise.all([this.items.get(entryKey), this.items.get(usageKey)]);
      const old = entryItem ? entrySchema.parse(entryItem.data) : undefined;
      const used = usageItem ? usageSchema.parse(usageItem.data).size : 0;
      const total = used - (old?.size ?? 0) + value.length;
      if (value.length > (old?.size ?? 0) && total > capBytes) throw new StorageFullError();

      let entry: Entry = { size: value.length, value: Buffer.from(value).toString("base64") };
      if (value.length > INLINE_MAX_BYTES) {
        // A fresh blob name: the current value stays readable until the item points elsewhere.
        entry = { size: value.length, blob: pluginStorageBlobKey(tenantId, pluginId, key) };
        await this.blobs.put(entry.blob!, value);
      }
      const ops: WriteOp[] = [
        {
          op: "put",
          item: { ...entryKey, data: entry },
          condition: entryItem ? { kind: "versionIs", version: entryItem.version ?? 0 } : { kind: "notExists" },
        },
        {
          op: "put",
          item: { ...usageKey, data: { size: total } },
          condition: usageItem ? { kind: "versionIs", version: usageItem.version ?? 0 } : { kind: "notExists" },
        },
      ];
      try {
        await this.items.write(ops);
      } catch (err) {
        if (entry.blob) await this.blobs.delete(entry.blob);
        if (err instanceof ConditionFailedError && attempt < ATTEMPTS) continue;
        throw err;
      }
      if (old?.blob) await this.blobs.delete(old.blob);
      return;
    }
  }

  /** Deletes the key; false when it did not exist. */
  async delete(tenantId: string, pluginId: string, key: string): Promise<boolean> {
    const entryKey = keys.storageEntry(tenantId, pluginId, key);
    const usageKey = keys.storageUsage(tenantId, pluginId);
    for (let attempt = 1; ; attempt++) {
      const [entryItem, usageItem] = await Promise.all([this.items.get(entryKey), this.items.get(usageKey)]);
      if (!entryItem) return false;
      const old = entrySchema.parse(entryItem.data);
      const used = usageItem ? usageSchema.parse(usageItem.data).size : 0;
      const ops: WriteOp[] = [
        { op: "delete", key: entryKey, condition: { kind: "versionIs", version: entryItem.version ?? 0 } },
        {
          op: "put",
          item: { ...usageKey, data: { size: Math.max(0, used - old.size) } },
          condition: usageItem ? { kind: "versionIs", version: usageItem.version ?? 0 } : { kind: "notExists" },
        },
      ];
      try {
        await this.items.write(ops);
      } catch (err) {
        if (err instanceof ConditionFailedError && attempt < ATTEMPTS) continue;
        throw err;
      }
      if (old.blob) await this.blobs.delete(old.blob);
      return true;
    }
  }
}
