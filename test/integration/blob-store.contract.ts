/**
 * The behaviour every BlobStore adapter must share, run against each of them. Each test uses keys
 * under its own random prefix, so one store (one bucket) can serve the whole suite.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { BlobStore } from "../../src/ports/blob-store.js";

export function blobStoreContract(makeStore: () => BlobStore | Promise<BlobStore>): void {
  async function setup() {
    const store = await makeStore();
    const ns = randomUUID();
    return { store, key: (name: string) => `${ns}/${name}` };
  }

  const bytes = (text: string) => new TextEncoder().encode(text);

  describe("blob store", () => {
    it("reports a key never written as missing", async () => {
      const { store, key } = await setup();
      expect(await store.get(key("missing.difypkg"))).toBeUndefined();
      expect(await store.exists(key("missing.difypkg"))).toBe(false);
    });

    it("reads back every byte value unchanged", async () => {
      const { store, key } = await setup();
      const body = Uint8Array.from({ length: 512 }, (_, i) => i % 256);
      await store.put(key("all-bytes.bin"), body);
      expect(await store.get(key("all-bytes.bin"))).toEqual(body);
      expect(await store.exists(key("all-bytes.bin"))).toBe(true);
    });

    it("stores an empty body", async () => {
      const { store, key } = await setup();
      await store.put(key("empty"), new Uint8Array());
      expect(await store.get(key("empty"))).toEqual(new Uint8Array());
      expect(await store.exists(key("empty"))).toBe(true);
    });

    it("replaces the bytes on a second put", async () => {
      const { store, key } = await setup();
      await store.put(key("manifest.yaml"), bytes("version: 0.0.1 and some longer text"));
      await store.put(key("manifest.yaml"), bytes("version: 0.0.2"));
      expect(await store.get(key("manifest.yaml"))).toEqual(bytes("version: 0.0.2"));
    });

    it("keeps a key and keys nested under it apart, unicode and spaces included", async () => {
      const { store, key } = await setup();
      const names = ["pkg", "pkg/_assets/icon.svg", "pkg/_assets/ïcône 🎨.png", "pkg.blob", ".hidden", "a*b"];
      for (const name of names) await store.put(key(name), bytes(`content of ${name}`));
      for (const name of names) expect(await store.get(key(name))).toEqual(bytes(`content of ${name}`));
      expect(await store.exists(key("pkg/_assets"))).toBe(false);
    });

    it("deletes a key, and deleting a missing key is not an error", async () => {
      const { store, key } = await setup();
      await store.put(key("doomed"), bytes("x"));
      await store.put(key("doomed/child"), bytes("y"));
      await store.delete(key("doomed"));
      expect(await store.get(key("doomed"))).toBeUndefined();
      expect(await store.exists(key("doomed"))).toBe(false);
      expect(await store.get(key("doomed/child"))).toEqual(bytes("y"));
      await store.delete(key("doomed"));
      await store.delete(key("never-existed"));
    });

    it("round-trips a package-sized (8 MB) body", async () => {
      const { store, key } = await setup();
      const body = new Uint8Array(randomBytes(8 * 1024 * 1024));
      await store.put(key("big.difypkg"), body);
      const read = await store.get(key("big.difypkg"));
      expect(read?.byteLength).toBe(body.byteLength);
      expect(Buffer.from(read as Uint8Array).equals(Buffer.from(body))).toBe(true);
    });

    it("leaves one whole version when puts race on a key", async () => {
      const { store, key } = await setup();
      const versions = Array.from({ length: 8 }, (_, i) => new Uint8Array(256 * 1024).fill(i));
      await Promise.all(versions.map((body) => store.put(key("raced"), body)));
      const read = await store.get(key("raced"));
      expect(read?.byteLength).toBe(256 * 1024);
      const first = (read as Uint8Array)[0] as number;
      expect((read as Uint8Array).every((byte) => byte === first)).toBe(true);
    });
  });
}
