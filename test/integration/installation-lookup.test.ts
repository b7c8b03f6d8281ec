import { afterAll, describe, expect, it } from "vitest";
import type { SqliteItemStore } from "../../src/adapters/local/sqlite-item-store.js";
import type { ItemStore } from "../../src/ports/item-store.js";
import { type Installation, Installations } from "../../src/stores/installations.js";
import { temporarySqliteStores } from "../support/sqlite-stores.js";

const stores = temporarySqliteStores("installation-lookup-");
const open = () => stores.open();

afterAll(() => stores.removeAll());

const uid = (version: string) => `acme/echo:${version}@${"a".repeat(64)}` as Installation["plugin_unique_identifier"];
const installation = (tenant: string, version: string): Installation => ({
  id: `inst-${tenant}`,
  tenant_id: tenant,
  plugin_id: "acme/echo",
  plugin_unique_identifier: uid(version),
  runtime_type: "local",
  source: "package",
  meta: {},
  endpoints_setups: 0,
  endpoints_active: 0,
  created_at: "2026-12-01T00:00:00Z",
  updated_at: "2026-12-01T00:00:00Z",
});

/** The store, counting the reads that reach it. */
function counted(store: SqliteItemStore): { items: ItemStore; reads: () => number } {
  let reads = 0;
  return {
    items: {
      get: (key) => {
        reads += 1;
        return store.get(key);
      },
      query: (pk, options) => store.query(pk, options),
      write: (ops) => store.write(ops),
      changeStamp: () => store.changeStamp(),
    },
    reads: () => reads,
  };
}

describe("the installed identifier every dispatch resolves", () => {
  it("is read from the store once, then remembered while nothing is written", async () => {
    const { items, reads } = counted(open());
    const installations = new Installations(items);
    await installations.create(installation("t-memo", "0.0.1"));
    for (let i = 0; i < 5; i++)
      expect(await installations.installedIdentifier("t-memo", "acme/echo")).toBe(uid("0.0.1"));
    expect(reads()).toBe(1);
  });

  /** The reader's answer after the writer installs, upgrades and uninstalls the plugin. */
  async function followsWrites(reader: Installations, writer: Installations, tenant: string) {
    await writer.create(installation(tenant, "0.0.1"));
    expect(await reader.installedIdentifier(tenant, "acme/echo")).toBe(uid("0.0.1"));
    const current = await writer.get(tenant, "acme/echo");
    await writer.replace(current!, installation(tenant, "0.0.2"));
    expect(await reader.installedIdentifier(tenant, "acme/echo")).toBe(uid("0.0.2"));
    await writer.remove(installation(tenant, "0.0.2"));
    expect(await reader.installedIdentifier(tenant, "acme/echo")).toBeUndefined();
  }

  it("follows an install, an upgrade and an uninstall made through this daemon at once", async () => {
    const store = open();
    // Another repository on the same store (as the endpoint counters are) writes: seen at once.
    await followsWrites(new Installations(store), new Installations(store), "t-own");
  });

  it("follows writes another process makes to the same database file", async () => {
    await followsWrites(new Installations(open()), new Installations(open()), "t-other");
  });

  it("is read every time from a store that cannot tell when it changed", async () => {
    const { items, reads } = counted(open());
    const { changeStamp: _, ...withoutStamp } = items;
    const installations = new Installations(withoutStamp);
    await installations.create(installation("t-nostamp", "0.0.1"));
    await installations.installedIdentifier("t-nostamp", "acme/echo");
    await installations.installedIdentifier("t-nostamp", "acme/echo");
    expect(reads()).toBe(2);
  });
});
