/**
 * The behaviour every ItemStore adapter must share, run against each of them. Each test works in
 * its own partition keys, so one store (one table) can serve the whole suite.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ConditionFailedError, type Item, type ItemStore } from "../../src/ports/item-store.js";

const nowSeconds = () => Math.floor(Date.now() / 1000);

export function itemStoreContract(makeStore: () => ItemStore | Promise<ItemStore>): void {
  /** A fresh store and a partition-key namespace no other test uses. */
  async function setup() {
    const store = await makeStore();
    const ns = randomUUID();
    return { store, pk: (name: string) => `${ns}#${name}` };
  }

  const skOf = (items: Item[]) => items.map((item) => item.sk);

  describe("get and put", () => {
    it("returns undefined for a key never written", async () => {
      const { store, pk } = await setup();
      expect(await store.get({ pk: pk("nothing"), sk: "here" })).toBeUndefined();
    });

    it("reads back exactly what was put, nested data and unicode included, at version 1", async () => {
      const { store, pk } = await setup();
      const data = {
        name: "语言模型 — modèle 🤖",
        emptyString: "",
        count: 42,
        negative: -7,
        ratio: 0.1,
        tiny: 1e-7,
        big: Number.MAX_SAFE_INTEGER,
        enabled: true,
        disabled: false,
        nothing: null,
        tags: ["a", "ß", "日本語"],
        emptyList: [],
        emptyMap: {},
        nested: { level1: { level2: { level3: [1, { deep: "ok" }, [true, null]] } } },
        "key with spaces and ünïcode 🔑": "value",
      };
      const item: Item = {
        pk: pk("plugin"),
        sk: "declaration#ü",
        gsi1pk: pk("tenant"),
        gsi1sk: "2026-01-01",
        expiresAt: nowSeconds() + 3600,
        data,
      };
      await store.write([{ op: "put", item }]);
      expect(await store.get({ pk: item.pk, sk: item.sk })).toEqual({ ...item, version: 1 });
    });

    it("keeps numbers JSON can hold but DynamoDB maps cannot", async () => {
      const { store, pk } = await setup();
      const data = { huge: 2 ** 60, astronomic: 1e300, minute: 5e-324, "": "empty attribute name" };
      await store.write([{ op: "put", item: { pk: pk("numbers"), sk: "x", data } }]);
      expect((await store.get({ pk: pk("numbers"), sk: "x" }))?.data).toEqual(data);
    });

    it("drops undefined fields as JSON does", async () => {
      const { store, pk } = await setup();
      await store.write([{ op: "put", item: { pk: pk("u"), sk: "x", data: { kept: 1, dropped: undefined } } }]);
      expect((await store.get({ pk: pk("u"), sk: "x" }))?.data).toStrictEqual({ kept: 1 });
    });

    it("replaces the whole item on put, bumping the version and ignoring a version passed in", async () => {
      const { store, pk } = await setup();
      const key = { pk: pk("item"), sk: "one" };
      await store.write([
        {
          op: "put",
          item: { ...key, gsi1pk: pk("idx"), gsi1sk: "a", expiresAt: nowSeconds() + 60, data: { a: 1, b: 2 } },
        },
      ]);
      await store.write([{ op: "put", item: { ...key, version: 99, data: { c: 3 } } }]);
      expect(await store.get(key)).toEqual({ ...key, version: 2, data: { c: 3 } });
      expect(await store.query(pk("idx"), { index: "gsi1" })).toEqual([]);
    });

    it("stores a data item larger than 100 KB (a big model provider's declaration)", async () => {
      const { store, pk } = await setup();
      const models = Array.from({ length: 400 }, (_, i) => ({
        model: `model-${i}`,
        label: { en_US: `Model ${i}`, zh_Hans: `模型 ${i}` },
        parameter_rules: [{ name: "temperature", min: 0, max: 2, default: 0.7, help: { en_US: "x".repeat(200) } }],
      }));
      const data = { provider: "big", models };
      expect(JSON.stringify(data).length).toBeGreaterThan(100 * 1024);
      await store.write([{ op: "put", item: { pk: pk("big"), sk: "declaration", data } }]);
      expect((await store.get({ pk: pk("big"), sk: "declaration" }))?.data).toEqual(data);
    });

    it("stores 350 KB of barely compressible data, close to DynamoDB's 400 KB item limit", async () => {
      const { store, pk } = await setup();
      const data = { blob: randomBytes(270 * 1024).toString("base64") };
      expect(JSON.stringify(data).length).toBeGreaterThan(350 * 1024);
      await store.write([{ op: "put", item: { pk: pk("random"), sk: "x", data } }]);
      expect((await store.get({ pk: pk("random"), sk: "x" }))?.data).toEqual(data);
    });
  });

  describe("conditions", () => {
    it("notExists lets the first put through and refuses the second, leaving the first intact", async () => {
      const { store, pk } = await setup();
      const key = { pk: pk("task"), sk: "t1" };
      await store.write([{ op: "put", item: { ...key, data: { by: "first" } }, condition: { kind: "notExists" } }]);
      await expect(
        store.write([{ op: "put", item: { ...key, data: { by: "second" } }, condition: { kind: "notExists" } }]),
      ).rejects.toBeInstanceOf(ConditionFailedError);
      expect(await store.get(key)).toEqual({ ...key, version: 1, data: { by: "first" } });
    });

    it("versionIs accepts the version read and then refuses the now stale one", async () => {
      const { store, pk } = await setup();
      const key = { pk: pk("installation"), sk: "i1" };
      await store.write([{ op: "put", item: { ...key, data: { n: 0 } } }]);
      const read = await store.get(key);
      expect(read?.version).toBe(1);

      await store.write([
        { op: "put", item: { ...key, data: { n: 1 } }, condition: { kind: "versionIs", version: 1 } },
      ]);
      await expect(
        store.write([{ op: "put", item: { ...key, data: { n: 2 } }, condition: { kind: "versionIs", version: 1 } }]),
      ).rejects.toBeInstanceOf(ConditionFailedError);
      expect(await store.get(key)).toEqual({ ...key, version: 2, data: { n: 1 } });
    });

    it("versionIs fails for an item that does not exist", async () => {
      const { store, pk } = await setup();
      const key = { pk: pk("ghost"), sk: "g" };
      await expect(
        store.write([{ op: "put", item: { ...key, data: {} }, condition: { kind: "versionIs", version: 1 } }]),
      ).rejects.toBeInstanceOf(ConditionFailedError);
      expect(await store.get(key)).toBeUndefined();
    });

    it("exists refuses to put an item that is not there", async () => {
      const { store, pk } = await setup();
      const key = { pk: pk("update"), sk: "u" };
      await expect(
        store.write([{ op: "put", item: { ...key, data: {} }, condition: { kind: "exists" } }]),
      ).rejects.toBeInstanceOf(ConditionFailedError);
      expect(await store.get(key)).toBeUndefined();
    });

    it("deletes with exists only what is there, and deletes without a condition idempotently", async () => {
      const { store, pk } = await setup();
      const key = { pk: pk("endpoint"), sk: "e1" };
      await expect(store.write([{ op: "delete", key, condition: { kind: "exists" } }])).rejects.toBeInstanceOf(
        ConditionFailedError,
      );
      await store.write([{ op: "put", item: { ...key, data: { x: 1 } } }]);
      await store.write([{ op: "delete", key, condition: { kind: "exists" } }]);
      expect(await store.get(key)).toBeUndefined();
      await store.write([{ op: "delete", key }]);
      expect(await store.get(key)).toBeUndefined();
    });

    it("refuses a delete on a stale version", async () => {
      const { store, pk } = await setup();
      const key = { pk: pk("endpoint"), sk: "e2" };
      await store.write([{ op: "put", item: { ...key, data: { x: 1 } } }]);
      await store.write([{ op: "put", item: { ...key, data: { x: 2 } } }]);
      await expect(
        store.write([{ op: "delete", key, condition: { kind: "versionIs", version: 1 } }]),
      ).rejects.toBeInstanceOf(ConditionFailedError);
      await store.write([{ op: "delete", key, condition: { kind: "versionIs", version: 2 } }]);
      expect(await store.get(key)).toBeUndefined();
    });
  });

  describe("batches", () => {
    it("applies every operation of a batch", async () => {
      const { store, pk } = await setup();
      await store.write([{ op: "put", item: { pk: pk("p"), sk: "old", data: {} } }]);
      await store.write([
        { op: "put", item: { pk: pk("p"), sk: "a", data: { i: 1 } }, condition: { kind: "notExists" } },
        { op: "put", item: { pk: pk("q"), sk: "b", data: { i: 2 } } },
        { op: "delete", key: { pk: pk("p"), sk: "old" }, condition: { kind: "exists" } },
      ]);
      expect(skOf(await store.query(pk("p")))).toEqual(["a"]);
      expect(skOf(await store.query(pk("q")))).toEqual(["b"]);
    });

    it("writes nothing when one condition of the batch fails", async () => {
      const { store, pk } = await setup();
      const taken = { pk: pk("package"), sk: "taken" };
      const doomed = { pk: pk("package"), sk: "doomed" };
      await store.write([{ op: "put", item: { ...taken, data: { owner: "original" } } }]);
      await store.write([{ op: "put", item: { ...doomed, data: {} } }]);

      await expect(
        store.write([
          { op: "put", item: { pk: pk("package"), sk: "new-1", data: {} }, condition: { kind: "notExists" } },
          { op: "put", item: { pk: pk("other"), sk: "new-2", data: {} } },
          { op: "delete", key: doomed },
          { op: "put", item: { ...taken, data: { owner: "intruder" } }, condition: { kind: "notExists" } },
        ]),
      ).rejects.toBeInstanceOf(ConditionFailedError);

      expect(skOf(await store.query(pk("package")))).toEqual(["doomed", "taken"]);
      expect(await store.query(pk("other"))).toEqual([]);
      expect((await store.get(taken))?.data).toEqual({ owner: "original" });
    });

    it("rejects a batch of more than 100 operations with a clear error, writing nothing", async () => {
      const { store, pk } = await setup();
      const ops = Array.from({ length: 101 }, (_, i) => ({
        op: "put" as const,
        item: { pk: pk("many"), sk: String(i).padStart(3, "0"), data: {} },
      }));
      await expect(store.write(ops)).rejects.toThrow(/at most 100 operations, got 101/);
      expect(await store.query(pk("many"))).toEqual([]);
    });

    it("accepts a batch of exactly 100 operations", async () => {
      const { store, pk } = await setup();
      const ops = Array.from({ length: 100 }, (_, i) => ({
        op: "put" as const,
        item: { pk: pk("hundred"), sk: String(i).padStart(3, "0"), data: { i } },
      }));
      await store.write(ops);
      expect(await store.query(pk("hundred"))).toHaveLength(100);
    });

    it("rejects a batch that touches the same item twice", async () => {
      const { store, pk } = await setup();
      const key = { pk: pk("twice"), sk: "x" };
      await expect(
        store.write([
          { op: "put", item: { ...key, data: {} } },
          { op: "delete", key },
        ]),
      ).rejects.toThrow(/more than once/);
      expect(await store.get(key)).toBeUndefined();
    });

    it("rejects an item with only one of the two index keys", async () => {
      const { store, pk } = await setup();
      await expect(
        store.write([{ op: "put", item: { pk: pk("half"), sk: "x", gsi1pk: "g", data: {} } }]),
      ).rejects.toThrow(/only one of gsi1pk and gsi1sk/);
    });
  });

  describe("query", () => {
    async function seed() {
      const env = await setup();
      const { store, pk } = env;
      for (const sk of ["b#1", "a#2", "a#10", "a#1", "c"]) {
        await store.write([{ op: "put", item: { pk: pk("list"), sk, data: { sk } } }]);
      }
      await store.write([{ op: "put", item: { pk: pk("elsewhere"), sk: "a#0", data: {} } }]);
      return env;
    }

    it("lists a partition in sort-key order, ascending by default", async () => {
      const { store, pk } = await seed();
      expect(skOf(await store.query(pk("list")))).toEqual(["a#1", "a#10", "a#2", "b#1", "c"]);
    });

    it("lists descending when asked", async () => {
      const { store, pk } = await seed();
      expect(skOf(await store.query(pk("list"), { descending: true }))).toEqual(["c", "b#1", "a#2", "a#10", "a#1"]);
    });

    it("filters by sort-key prefix", async () => {
      const { store, pk } = await seed();
      expect(skOf(await store.query(pk("list"), { skPrefix: "a#" }))).toEqual(["a#1", "a#10", "a#2"]);
      expect(skOf(await store.query(pk("list"), { skPrefix: "a#1" }))).toEqual(["a#1", "a#10"]);
      expect(await store.query(pk("list"), { skPrefix: "z" })).toEqual([]);
    });

    it("stops at the limit, in either direction and with a prefix", async () => {
      const { store, pk } = await seed();
      expect(skOf(await store.query(pk("list"), { limit: 2 }))).toEqual(["a#1", "a#10"]);
      expect(skOf(await store.query(pk("list"), { skPrefix: "a#", descending: true, limit: 2 }))).toEqual([
        "a#2",
        "a#10",
      ]);
      expect(await store.query(pk("list"), { limit: 0 })).toEqual([]);
    });

    it("returns whole items with their versions", async () => {
      const { store, pk } = await seed();
      const [first] = await store.query(pk("list"), { limit: 1 });
      expect(first).toEqual({ pk: pk("list"), sk: "a#1", version: 1, data: { sk: "a#1" } });
    });

    it("queries the secondary index across partitions, ordered by its sort key", async () => {
      const { store, pk } = await setup();
      const tenant = pk("tenant");
      const put = (owner: string, when: string) =>
        store.write([
          { op: "put", item: { pk: pk(owner), sk: "install", gsi1pk: tenant, gsi1sk: when, data: { owner } } },
        ]);
      await put("p3", "2026-03");
      await put("p1", "2026-01");
      await put("p2", "2026-02");
      await put("p4", "2025-12");
      await store.write([{ op: "put", item: { pk: pk("unindexed"), sk: "install", data: {} } }]);

      const owners = (items: Item[]) => items.map((item) => item.data.owner);
      expect(owners(await store.query(tenant, { index: "gsi1" }))).toEqual(["p4", "p1", "p2", "p3"]);
      expect(owners(await store.query(tenant, { index: "gsi1", skPrefix: "2026-", descending: true }))).toEqual([
        "p3",
        "p2",
        "p1",
      ]);
      expect(owners(await store.query(tenant, { index: "gsi1", limit: 1 }))).toEqual(["p4"]);
      const [item] = await store.query(tenant, { index: "gsi1", limit: 1 });
      expect(item).toEqual({
        pk: pk("p4"),
        sk: "install",
        gsi1pk: tenant,
        gsi1sk: "2025-12",
        version: 1,
        data: { owner: "p4" },
      });
    });
  });

  describe("expiry", () => {
    it("hides expired items from get and query while showing live ones", async () => {
      const { store, pk } = await setup();
      const now = nowSeconds();
      const session = pk("session");
      await store.write([
        {
          op: "put",
          item: { pk: session, sk: "1-expired", gsi1pk: pk("s-idx"), gsi1sk: "1", expiresAt: now - 10, data: {} },
        },
        {
          op: "put",
          item: { pk: session, sk: "2-live", gsi1pk: pk("s-idx"), gsi1sk: "2", expiresAt: now + 600, data: {} },
        },
        { op: "put", item: { pk: session, sk: "3-expired", expiresAt: now - 1, data: {} } },
        { op: "put", item: { pk: session, sk: "4-forever", data: {} } },
      ]);
      expect(await store.get({ pk: session, sk: "1-expired" })).toBeUndefined();
      expect((await store.get({ pk: session, sk: "2-live" }))?.expiresAt).toBe(now + 600);
      expect(skOf(await store.query(session))).toEqual(["2-live", "4-forever"]);
      expect(skOf(await store.query(pk("s-idx"), { index: "gsi1" }))).toEqual(["2-live"]);
    });

    it("fills the limit with live items when expired ones come first", async () => {
      const { store, pk } = await setup();
      const now = nowSeconds();
      const partition = pk("mixed");
      await store.write(
        ["a", "b", "c", "d", "e", "f"].map((sk, i) => ({
          op: "put" as const,
          item: { pk: partition, sk, expiresAt: i % 2 === 0 ? now - 5 : undefined, data: {} },
        })),
      );
      expect(skOf(await store.query(partition, { limit: 2 }))).toEqual(["b", "d"]);
      expect(skOf(await store.query(partition, { limit: 5 }))).toEqual(["b", "d", "f"]);
    });

    it("treats an expired item as absent for conditions", async () => {
      const { store, pk } = await setup();
      const key = { pk: pk("lock"), sk: "l" };
      await store.write([{ op: "put", item: { ...key, expiresAt: nowSeconds() - 5, data: { holder: "old" } } }]);
      await expect(store.write([{ op: "delete", key, condition: { kind: "exists" } }])).rejects.toBeInstanceOf(
        ConditionFailedError,
      );
      await store.write([{ op: "put", item: { ...key, data: { holder: "new" } }, condition: { kind: "notExists" } }]);
      expect((await store.get(key))?.data).toEqual({ holder: "new" });
    });
  });
}
