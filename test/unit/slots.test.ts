/**
 * Launch slots: at most `limit` holders, urgent waiters served first, waiters that hurry or give
 * up their place.
 */
import { describe, expect, it } from "vitest";
import { Slots } from "../../src/shared/slots.js";

const settled = () => new Promise((r) => setImmediate(r));

describe("slots", () => {
  it("grants up to the limit at once and the next waiter when one is given back", async () => {
    const slots = new Slots(2);
    const order: string[] = [];
    const take = (name: string, urgent = false) =>
      slots.acquire(urgent).granted.then((release) => {
        order.push(name);
        return release;
      });
    const a = take("a");
    const b = take("b");
    const c = take("c");
    await settled();
    expect(order).toEqual(["a", "b"]);
    expect(slots.usage).toEqual({ held: 2, waiting: 1 });
    (await a)();
    await settled();
    expect(order).toEqual(["a", "b", "c"]);
    (await b)();
    (await c)();
    expect(slots.usage).toEqual({ held: 0, waiting: 0 });
  });

  it("serves urgent waiters before earlier ones that are not, and one that hurries in its place among the urgent", async () => {
    const slots = new Slots(1);
    const order: string[] = [];
    const first = await slots.acquire(false).granted;
    const requests = ["warm-1", "warm-2", "warm-3"].map((name) => {
      const request = slots.acquire(false);
      void request.granted.then((release) => {
        order.push(name);
        release();
      });
      return request;
    });
    void slots.acquire(true).granted.then((release) => {
      order.push("call");
      release();
    });
    requests[2]?.hurry();
    first();
    await settled();
    // warm-3 asked before the call, so among the urgent it comes first.
    expect(order).toEqual(["warm-3", "call", "warm-1", "warm-2"]);
  });

  it("lets a waiter leave the queue, and gives a released slot back once however often it is released", async () => {
    const slots = new Slots(1);
    const release = await slots.acquire(false).granted;
    const leaving = slots.acquire(false);
    const staying = slots.acquire(false);
    expect(leaving.cancel(new Error("stopped"))).toBe(true);
    await expect(leaving.granted).rejects.toThrow("stopped");
    release();
    release();
    const next = await staying.granted;
    expect(staying.cancel(new Error("too late"))).toBe(false);
    expect(slots.usage).toEqual({ held: 1, waiting: 0 });
    next();
  });

  it("refuses a limit below one", () => {
    expect(() => new Slots(0)).toThrow(RangeError);
  });
});
