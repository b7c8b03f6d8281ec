/**
 * The package checksum that ends every plugin unique identifier. It must equal upstream's
 * (pkg/plugin_packager/decoder/checksum.go) byte for byte, or identifiers computed here would not
 * match the ones Dify and the marketplace already store:
 *
 *   sha256( for each entry name in byte-wise sorted order: sha256(name) ‖ sha256(content) )
 *
 * Every entry counts, `.verification.dify.json` included; the archive comment (signature) does not.
 */
import { createHash } from "node:crypto";
import type { PackageEntry } from "./package-archive.js";

const sha256 = (data: Uint8Array): Buffer => createHash("sha256").update(data).digest();

/** 64 lowercase hex characters. Entry names are taken as readPackage cleaned them. */
export function packageChecksum(entries: readonly PackageEntry[]): string {
  // Keyed by name like upstream's map, so a repeated name counts once (the last copy).
  const contentHashes = new Map<string, Buffer>();
  for (const entry of entries) contentHashes.set(entry.name, sha256(entry.data));

  // Go sorts strings by their UTF-8 bytes; JS's default sort compares UTF-16 units, which
  // disagrees for some non-ASCII names, so compare the encoded bytes instead.
  const names = [...contentHashes.keys()]
    .map((name) => ({ name, bytes: Buffer.from(name, "utf8") }))
    .sort((a, b) => Buffer.compare(a.bytes, b.bytes));

  const outer = createHash("sha256");
  for (const { name, bytes } of names) {
    outer.update(sha256(bytes));
    outer.update(contentHashes.get(name)!);
  }
  return outer.digest("hex");
}
