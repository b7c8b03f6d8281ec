import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DiskBlobStore } from "../../src/adapters/local/disk-blob-store.js";
import { blobStoreContract } from "./blob-store.contract.js";

const parent = mkdtempSync(join(tmpdir(), "disk-blob-store-"));
const root = join(parent, "blobs");
const store = new DiskBlobStore(root);

afterAll(() => rmSync(parent, { recursive: true, force: true }));

/** Every file under a directory, as paths relative to it. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name).slice(dir.length + 1))
    .sort();
}

describe("DiskBlobStore", () => {
  blobStoreContract(() => store);

  it("refuses keys that could reach outside its directory", async () => {
    const body = new TextEncoder().encode("escape attempt");
    for (const key of ["../outside", "a/../../outside", "/etc/passwd", "a//b", "./a", "a/.", "", "nul\0byte"]) {
      await expect(store.put(key, body), key).rejects.toThrow(/invalid blob key/);
      await expect(store.get(key), key).rejects.toThrow(/invalid blob key/);
    }
    expect(readdirSync(parent)).toEqual(["blobs"]);
  });

  it("lays blobs out as readable files and leaves no temporary files behind", async () => {
    const dir = mkdtempSync(join(tmpdir(), "disk-blob-layout-"));
    try {
      const own = new DiskBlobStore(dir);
      await own.put("packages/langgenius/openai:0.0.1.difypkg", new Uint8Array([1]));
      await own.put("assets/icon.svg", new Uint8Array([2]));
      expect(filesUnder(dir)).toEqual(["assets/icon.svg.blob", "packages/langgenius/openai%3A0.0.1.difypkg.blob"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("finds blobs written by an earlier instance on the same directory", async () => {
    await store.put("survivor", new TextEncoder().encode("still here"));
    expect(new TextDecoder().decode(await new DiskBlobStore(root).get("survivor"))).toBe("still here");
  });
});
