/** Keep-alive blank lines in streamed answers (src/routes/stream-keepalive.ts), on real timers. */
import { describe, expect, it } from "vitest";
import { keepAlive } from "../../src/routes/stream-keepalive.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function collect(source: AsyncIterable<string>, timing: { idleMs: number; firstChunkWaitMs: number }) {
  const out: string[] = [];
  for await (const value of keepAlive(source, timing)) out.push(String(value));
  return out;
}

describe("stream keep-alive", () => {
  it("passes a long answer through unchanged while its chunks keep coming", async () => {
    const chunks = Array.from({ length: 10_000 }, (_, i) => `data: ${i}\n\n`);
    const source = (async function* () {
      for (const [i, c] of chunks.entries()) {
        if (i % 1000 === 0) await sleep(1);
        yield c;
      }
    })();
    expect(await collect(source, { idleMs: 200, firstChunkWaitMs: 200 })).toEqual(chunks);
  });

  it("fills a silence in the middle of an answer with blank lines, then goes on", async () => {
    const source = (async function* () {
      yield "data: 1\n\n";
      await sleep(450);
      yield "data: 2\n\n";
    })();
    const out = await collect(source, { idleMs: 100, firstChunkWaitMs: 1000 });
    expect(out[0]).toBe("data: 1\n\n");
    expect(out.at(-1)).toBe("data: 2\n\n");
    expect(out.slice(1, -1).every((c) => c === "\n")).toBe(true);
    expect(out.length - 2).toBeGreaterThanOrEqual(3);
  });

  it("lets the source clean up when the reader stops early", async () => {
    let cleaned = false;
    const source = (async function* () {
      try {
        for (;;) {
          yield "data: x\n\n";
          await sleep(5);
        }
      } finally {
        cleaned = true;
      }
    })();
    for await (const _ of keepAlive(source, { idleMs: 100, firstChunkWaitMs: 100 })) break;
    await sleep(20);
    expect(cleaned).toBe(true);
  });

  it("keeps a chunk that arrives while the reader is busy with a blank line, and hands it over next, in order", async () => {
    const source = (async function* () {
      await sleep(150);
      yield "data: 1\n\n";
      yield "data: 2\n\n";
    })();
    const it = keepAlive(source, { idleMs: 100, firstChunkWaitMs: 100 })[Symbol.asyncIterator]();
    expect(await it.next()).toEqual({ done: false, value: "\n" });
    await sleep(120); // the source answers while nobody reads
    const rest: string[] = [];
    for (let step = await it.next(); !step.done; step = await it.next()) rest.push(String(step.value));
    expect(rest.filter((c) => c !== "\n")).toEqual(["data: 1\n\n", "data: 2\n\n"]);
  });

  it("fails the read when the source fails, tells the source, and stops its timer", async () => {
    let returned = 0;
    const source: AsyncIterable<string> = {
      [Symbol.asyncIterator]: () => ({
        next: () => sleep(20).then(() => Promise.reject(new Error("plugin gone"))),
        return: async () => {
          returned++;
          return { done: true, value: undefined };
        },
      }),
    };
    const it = keepAlive(source, { idleMs: 50, firstChunkWaitMs: 50 })[Symbol.asyncIterator]();
    await expect(it.next()).rejects.toThrow("plugin gone");
    expect(returned).toBe(1);
    await sleep(120); // no blank line after the failure
    expect(await it.next()).toEqual({ done: true, value: undefined });
  });
});
