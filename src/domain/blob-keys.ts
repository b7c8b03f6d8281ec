/**
 * Layout of the blob store (the package bucket on AWS, `blobs/` on disk): one prefix per kind of
 * object, so the stack can scope each handler's permissions to the prefixes it uses. Every key
 * is built here; infra/constructs/package-bucket.ts grants by these prefixes.
 */
import { createHash, randomUUID } from "node:crypto";
import { identifierParts, type PluginUniqueIdentifier } from "./identifier.js";

export const BLOB_PREFIXES = {
  packages: "packages/",
  assets: "assets/",
  /** Lambda code zips built for plugins. */
  pluginCode: "plugin-code/",
  /** Plugin storage values over 64 KiB. */
  pluginStorage: "plugin-storage/",
} as const;

export function packageBlobKey(uniqueIdentifier: PluginUniqueIdentifier): string {
  const id = identifierParts(uniqueIdentifier);
  return `${BLOB_PREFIXES.packages}${id.pluginId}/${id.version}@${id.checksum}.difypkg`;
}

export const assetBlobKey = (assetId: string): string => `${BLOB_PREFIXES.assets}${assetId}`;

export function pluginCodeBlobKey(uniqueIdentifier: PluginUniqueIdentifier, runtime: string, arch: string): string {
  const id = identifierParts(uniqueIdentifier);
  return `${BLOB_PREFIXES.pluginCode}${id.pluginId}/${id.version}@${id.checksum}/${runtime}-${arch}.zip`;
}

/** Storage keys are free text: hashed into the blob name, with a random part so each write gets its own blob. */
export function pluginStorageBlobKey(tenantId: string, pluginId: string, key: string): string {
  const digest = createHash("sha256").update(key).digest("hex");
  return `${BLOB_PREFIXES.pluginStorage}${tenantId}/${pluginId}/${digest}-${randomUUID()}`;
}
