/**
 * When the local daemon collects its garbage on its own: once per quiet period after requests,
 * never while a request or stream is in flight or requests keep arriving, never for nothing; and
 * the collection it runs shrinks the young generation.
 */

import { getHeapSpaceStatistics } from "node:v8";
import { describe, expect, it } from "vitest";
import { collectReducingMemory, quietCheck } from "../../src/local/idle-memory.js";
import type { RequestActivity } from "../../src/routes/request-activity.js";

function harness() {
  const activity: RequestActivity = {
    activeRequests: 0,
    activeDispatchRequests: 0,
    activeStreams: 0,
    endedRequests: 0,
  };
  let clock = 0;
  let collections = 0;
  const check = quietCheck({
    quietMs: 1000,
    activity: () => ({ ...activity }),
    collect: async () => {
      collections++;
    },
    now: () => clock,
  });
  /** Advances the clock in half-second checks, as the timer does. */
  const pass = async (ms: number) => {
    for (let t = 0; t < ms; t += 500) {
      clock += 500;
      await check();
    }
  };
  const serve = (n = 1) => {
    activity.endedRequests += n;
  };
  return { activity, pass, serve, collections: () => collections };
}

describe("memory collection when the daemon goes quiet", () => {
  it("does nothing in a daemon that has served nothing", async () => {
    const h = harness();
    await h.pass(10_000);
    expect(h.collections()).toBe(0);
  });

  it("collects once after a quiet period that follows requests, and again only after more requests", async () => {
    const h = harness();
    h.serve(5);
    await h.pass(500);
    expect(h.collections()).toBe(0);
    await h.pass(1500);
    expect(h.collections()).toBe(1);
    await h.pass(10_000);
    expect(h.collections()).toBe(1);
    h.serve();
    await h.pass(2000);
    expect(h.collections()).toBe(2);
  });

  it("waits while a request or a streamed answer is in flight", async () => {
    const h = harness();
    h.serve();
    h.activity.activeStreams = 1;
    await h.pass(5000);
    expect(h.collections()).toBe(0);
    h.activity.activeStreams = 0;
    h.activity.activeRequests = 1;
    await h.pass(5000);
    expect(h.collections()).toBe(0);
    h.activity.activeRequests = 0;
    h.serve();
    await h.pass(2000);
    expect(h.collections()).toBe(1);
  });

  it("never collects while requests keep arriving, however briefly each runs", async () => {
    const h = harness();
    for (let i = 0; i < 40; i++) {
      h.serve();
      await h.pass(500);
    }
    expect(h.collections()).toBe(0);
  });

  it("shrinks the young generation back from its peak (node's own gc() would not)", async () => {
    const youngMiB = () =>
      (getHeapSpaceStatistics().find((s) => s.space_name === "new_space")?.space_size ?? 0) / 2 ** 20;
    // Short-lived objects with some survivors, as requests in flight are: V8 grows the young generation.
    let alive: unknown[] = [];
    for (let i = 0; i < 3_000_000; i++) {
      alive.push({ i, list: [i] });
      if (alive.length > 20_000) alive = [];
    }
    expect(youngMiB()).toBeGreaterThan(4);
    await collectReducingMemory();
    expect(youngMiB()).toBeLessThanOrEqual(2);
  });
});
