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
});
