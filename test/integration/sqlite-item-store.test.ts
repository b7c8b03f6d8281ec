import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { SqliteItemStore } from "../../src/adapters/local/sqlite-item-store.js";
import { temporarySqliteStores } from "../support/sqlite-stores.js";
import { itemStoreContract } from "./item-store.contract.js";
import { runtimeClaimsContract } from "./runtime-claims.contract.js";

const stores = temporarySqliteStores("sqlite-item-store-");
const open = () => stores.open();
const shared = open();

afterAll(() => stores.removeAll());

describe("SqliteItemStore", () => {
  itemStoreContract(() => shared);
  runtimeClaimsContract(() => shared);

  it("keeps items and their versions across a restart", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sqlite-restart-"));
    try {
      const key = { pk: "plugin#langgenius/openai", sk: "install#tenant-1" };
      const before = SqliteItemStore.inDirectory(join(dir, "nested", "data"));
      await before.write([{ op: "put", item: { ...key, gsi1pk: "tenant-1", gsi1sk: "openai", data: { n: 1 } } }]);
      await before.write([{ op: "put", item: { ...key, gsi1pk: "tenant-1", gsi1sk: "openai", data: { n: 2 } } }]);
      before.close();

      const after = SqliteItemStore.inDirectory(join(dir, "nested", "data"));
      try {
        expect(await after.get(key)).toEqual({
          ...key,
          gsi1pk: "tenant-1",
          gsi1sk: "openai",
          version: 2,
          data: { n: 2 },
        });
        expect(await after.query("tenant-1", { index: "gsi1" })).toHaveLength(1);
        await after.write([
          { op: "put", item: { ...key, data: { n: 3 } }, condition: { kind: "versionIs", version: 2 } },
        ]);
        expect((await after.get(key))?.version).toBe(3);
      } finally {
        after.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reclaims expired rows, on demand and when reopened", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sqlite-expiry-"));
    try {
      const now = Math.floor(Date.now() / 1000);
      const store = SqliteItemStore.inDirectory(dir);
      await store.write([
        { op: "put", item: { pk: "p", sk: "gone-1", expiresAt: now - 1, data: {} } },
        { op: "put", item: { pk: "p", sk: "gone-2", expiresAt: now - 100, data: {} } },
        { op: "put", item: { pk: "p", sk: "stays", expiresAt: now + 100, data: {} } },
      ]);
      expect(store.deleteExpired()).toBe(2);
      expect(store.deleteExpired()).toBe(0);
      await store.write([{ op: "put", item: { pk: "p", sk: "gone-3", expiresAt: now - 1, data: {} } }]);
      store.close();

      const reopened = SqliteItemStore.inDirectory(dir);
      try {
        expect(reopened.deleteExpired()).toBe(0);
        expect((await reopened.query("p")).map((item) => item.sk)).toEqual(["stays"]);
      } finally {
        reopened.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("works in memory for throwaway use", async () => {
    const store = new SqliteItemStore({ filename: ":memory:" });
    try {
      await store.write([{ op: "put", item: { pk: "p", sk: "s", data: { ok: true } } }]);
      expect((await store.get({ pk: "p", sk: "s" }))?.data).toEqual({ ok: true });
    } finally {
      store.close();
    }
  });
});
