/**
 * Stored plugin packages: the .difypkg bytes in the blob store, and a record with the decoded
 * declaration (icons already remapped to asset ids) and the signature result in the item store.
 */
import { z } from "zod";
import { assetBlobKey } from "../domain/blob-keys.js";
import { type PluginUniqueIdentifier, uniqueIdentifierSchema } from "../domain/identifier.js";
import type { PluginDeclaration } from "../domain/manifest.js";
import { pluginDeclarationSchema } from "../domain/manifest.js";
import type { BlobStore } from "../ports/blob-store.js";
import type { ItemStore } from "../ports/item-store.js";
import { keys } from "./keys.js";

const verificationSchema = z.object({ authorized_category: z.enum(["langgenius", "partner", "community"]) });

const packageRecordSchema = z.object({
  unique_identifier: uniqueIdentifierSchema,
  plugin_id: z.string(),
  declaration: pluginDeclarationSchema,
  verified: z.boolean(),
  verification: verificationSchema.nullable(),
  package_key: z.string(),
  created_at: z.string(),
});

export type PackageRecord = z.infer<typeof packageRecordSchema> & { declaration: PluginDeclaration };

export class PackageRecords {
  /** Declarations never change for an identifier, so a process may keep them. */
  private readonly cache = new Map<string, PackageRecord>();

  constructor(
    private readonly items: ItemStore,
    private readonly blobs: BlobStore,
  ) {}

  async save(record: PackageRecord, bytes: Uint8Array, assets: Array<{ id: string; data: Uint8Array }>): Promise<void> {
    await Promise.all([
      this.blobs.put(record.package_key, bytes),
      ...assets.map((a) => this.blobs.put(assetBlobKey(a.id), a.data)),
    ]);
    // The record goes last: once it exists, the bytes it points to do too.
    await this.items.write([{ op: "put", item: { ...keys.package(record.unique_identifier), data: record } }]);
    this.cache.set(record.unique_identifier, record);
  }

  async get(uid: PluginUniqueIdentifier): Promise<PackageRecord | undefined> {
    const cached = this.cache.get(uid);
    if (cached) return cached;
    const item = await this.items.get(keys.package(uid));
    if (!item) return undefined;
    const record = packageRecordSchema.parse(item.data) as PackageRecord;
    this.cache.set(uid, record);
    return record;
  }

  async bytes(uid: PluginUniqueIdentifier): Promise<Uint8Array | undefined> {
    const record = await this.get(uid);
    return record ? this.blobs.get(record.package_key) : undefined;
  }

  asset(assetId: string): Promise<Uint8Array | undefined> {
    return this.blobs.get(assetBlobKey(assetId));
  }

  /** Tenants that have this package installed. */
  async users(uid: PluginUniqueIdentifier): Promise<string[]> {
    const uses = await this.items.query(keys.package(uid).pk, { skPrefix: keys.packageUsePrefix });
    return uses.map((u) => u.sk.slice(keys.packageUsePrefix.length));
  }
}
