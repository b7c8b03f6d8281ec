/**
 * RuntimeClaims on a real item store: run against SQLite and against DynamoDB (moto), the claims
 * that keep an install in one tenant and an uninstall in another from deleting a runtime in use.
 */
import { describe, expect, it } from "vitest";
import { uniqueIdentifier } from "../../src/domain/identifier.js";
import type { ItemStore } from "../../src/ports/item-store.js";
import { keys } from "../../src/stores/keys.js";
import { RuntimeClaims } from "../../src/stores/runtime-claims.js";

const lease = { installLeaseMs: 60_000, removalLeaseMs: 60_000, pollMs: 10 };
let n = 0;
const uid = () => uniqueIdentifier(`fixtures/claims-${process.pid}-${Date.now()}-${n++}:0.0.1@${"c".repeat(64)}`);
const settled = async (p: Promise<unknown>, ms = 100) =>
  Promise.race([p.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);

export function runtimeClaimsContract(store: () => ItemStore) {
  describe("runtime claims", () => {
    it("keeps the runtime while an install is in progress, and lets it go once the install settled", async () => {
      const claims = new RuntimeClaims(store(), lease);
      const id = uid();
      await claims.claim(id, "tenant-a");
      expect(await claims.beginRemovalIfUnused(id)).toBeUndefined();
      await claims.settle(id, "tenant-a");
      expect(await claims.beginRemovalIfUnused(id)).toEqual(expect.any(String));
    });

    it("keeps the runtime while any tenant has it installed", async () => {
      const claims = new RuntimeClaims(store(), lease);
      const id = uid();
      await store().write([
        { op: "put", item: { ...keys.packageUse(id, "tenant-b"), data: { tenant_id: "tenant-b" } } },
      ]);
      expect(await claims.beginRemovalIfUnused(id)).toBeUndefined();
    });

    it("makes an install wait for a removal in progress, then go ahead", async () => {
      const claims = new RuntimeClaims(store(), lease);
      const id = uid();
      const token = (await claims.beginRemovalIfUnused(id))!;
      const claim = claims.claim(id, "tenant-a");
      expect(await settled(claim, 200)).toBe(false);
      await claims.removalDone(id, token);
      expect(await settled(claim, 2000)).toBe(true);
      expect(await claims.beginRemovalIfUnused(id)).toBeUndefined();
    });

    // The two interleavings that matter, made deterministic: moto's server (threaded) does not
    // make concurrent conditional writes atomic the way DynamoDB does, so a free-running race would
    // test moto rather than the claims.
    it("fails a removal whose read saw no claim when a claim was written before its write", async () => {
      const id = uid();
      let interleaved = false;
      const racing = new RuntimeClaims(store(), lease);
      const remover = new RuntimeClaims(
        afterFirst(store(), "query", async () => {
          interleaved = true;
          await racing.claim(id, "tenant-a");
        }),
        lease,
      );
      expect(await remover.beginRemovalIfUnused(id)).toBeUndefined();
      expect(interleaved).toBe(true);
    });

    it("makes a claim whose read saw no removal wait when a removal was written before its write", async () => {
      const id = uid();
      const remover = new RuntimeClaims(store(), lease);
      let token: string | undefined;
      const claimer = new RuntimeClaims(
        afterFirst(store(), "get", async () => {
          token = await remover.beginRemovalIfUnused(id);
        }),
        lease,
      );
      const claim = claimer.claim(id, "tenant-a");
      expect(await settled(claim, 200)).toBe(false);
      expect(token).toEqual(expect.any(String));
      await remover.removalDone(id, token!);
      expect(await settled(claim, 2000)).toBe(true);
    });

    it("ignores claims and removals left by dead workers once their lease ran out", async () => {
      const short = new RuntimeClaims(store(), { installLeaseMs: 50, removalLeaseMs: 50, pollMs: 10 });
      const id = uid();
      await short.claim(id, "tenant-dead");
      await new Promise((r) => setTimeout(r, 80));
      const token = await short.beginRemovalIfUnused(id);
      expect(token).toEqual(expect.any(String));
      // The remover died too: a later install takes over after the lease.
      await new Promise((r) => setTimeout(r, 80));
      expect(await settled(short.claim(id, "tenant-a"), 1000)).toBe(true);
    });
  });
}

/** The store, with `hook` run once right after the first call of `method` returned. */
function afterFirst(inner: ItemStore, method: "get" | "query", hook: () => Promise<void>): ItemStore {
  let fired = false;
  const once = async <T>(result: T): Promise<T> => {
    if (!fired) {
      fired = true;
      await hook();
    }
    return result;
  };
  return {
    get: async (key) => (method === "get" ? once(await inner.get(key)) : inner.get(key)),
    query: async (pk, options) =>
      method === "query" ? once(await inner.query(pk, options)) : inner.query(pk, options),
    write: (ops) => inner.write(ops),
  };
}
