/**
 * Remote-debugging keys live two hours after the tenant last asked for one, like upstream's
 * connection keys; an expired key no longer names a tenant.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { SqliteItemStore } from "../../src/adapters/local/sqlite-item-store.js";
import { DEBUGGING_KEY_LIFETIME_SECONDS, DebuggingKeys } from "../../src/stores/debugging-keys.js";
import { keys } from "../../src/stores/keys.js";

const dir = mkdtempSync(join(tmpdir(), "debugging-keys-"));
const items = SqliteItemStore.inDirectory(dir);
afterAll(() => {
  items.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("DebuggingKeys", () => {
  it("gives a tenant the same key for two hours after its last request", async () => {
    let now = Date.now();
    const debuggingKeys = new DebuggingKeys(items, () => now);
    const key = await debuggingKeys.keyFor("tenant-a");
    expect(await debuggingKeys.tenantOf(key)).toBe("tenant-a");
    const expiry = async () => (await items.get(keys.debuggingKeyLookup(key)))?.expiresAt;
    expect(await expiry()).toBe(Math.floor(now / 1000) + DEBUGGING_KEY_LIFETIME_SECONDS);

    now += 3600_000;
    expect(await debuggingKeys.keyFor("tenant-a")).toBe(key);
    expect(await expiry()).toBe(Math.floor(now / 1000) + DEBUGGING_KEY_LIFETIME_SECONDS);
    expect((await items.get(keys.debuggingKey("tenant-a")))?.expiresAt).toBe(await expiry());
  });

  it("forgets an expired key and hands out a new one", async () => {
    const past = Date.now() - (DEBUGGING_KEY_LIFETIME_SECONDS + 60) * 1000;
    const key = await new DebuggingKeys(items, () => past).keyFor("tenant-b");
    const debuggingKeys = new DebuggingKeys(items);
    expect(await debuggingKeys.tenantOf(key)).toBeUndefined();
    const fresh = await debuggingKeys.keyFor("tenant-b");
    expect(fresh).not.toBe(key);
    expect(await debuggingKeys.tenantOf(fresh)).toBe("tenant-b");
  });
});
