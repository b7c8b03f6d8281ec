/** The capped line reader plugin stdout and the debugging socket are read with. */
import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { type OversizedLine, readBoundedLines } from "../../src/shared/bounded-lines.js";

function reader(limit: number | (() => number)) {
  const input = new PassThrough();
  const lines: string[] = [];
  const oversized: OversizedLine[] = [];
  readBoundedLines(
    input,
    limit,
    (l) => lines.push(l),
    (o) => oversized.push(o),
  );
  return { input, lines, oversized };
}

describe("readBoundedLines", () => {
  it("splits lines across chunks, drops empty lines and \\r, and keeps multi-byte characters whole", async () => {
    const { input, lines } = reader(1024);
    const euro = Buffer.from("€");
    input.write("one\r\n\ntw");
    input.write(Buffer.concat([Buffer.from("o "), euro.subarray(0, 1)]));
    input.write(Buffer.concat([euro.subarray(1), Buffer.from("\nthree")]));
    input.end();
    await new Promise((r) => input.once("end", r));
    expect(lines).toEqual(["one", "two €", "three"]);
  });

  it("reports a line past the cap once, with its head, and goes on with the next line", () => {
    const { input, lines, oversized } = reader(100);
    input.write('{"event":"session","session_id":"s-1","data":"');
    for (let i = 0; i < 50; i++) input.write("x".repeat(1000));
    input.write('"}\n{"ok":1}\n');
    expect(oversized).toHaveLength(1);
    expect(oversized[0]?.limit).toBe(100);
    expect(oversized[0]?.head).toContain('"session_id":"s-1"');
    expect(lines).toEqual(['{"ok":1}']);
  });

  it("accepts a line of exactly the cap and refuses one byte more", () => {
    const { input, lines, oversized } = reader(10);
    input.write("0123456789\n0123456789A\nok\n");
    expect(lines).toEqual(["0123456789", "ok"]);
    expect(oversized).toHaveLength(1);
  });

  it("reads the cap for each line, so it can grow after a handshake", () => {
    let cap = 4;
    const { input, lines, oversized } = reader(() => cap);
    input.write("abcdefgh\n");
    cap = 100;
    input.write("abcdefgh\n");
    expect(oversized).toHaveLength(1);
    expect(lines).toEqual(["abcdefgh"]);
  });

  it("holds no more than the cap while an endless line streams in", () => {
    const { input, oversized } = reader(64 * 1024);
    const before = process.memoryUsage().arrayBuffers;
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    for (let i = 0; i < 2000; i++) input.write(chunk); // 125 MiB, no newline
    expect(oversized).toHaveLength(1);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(32 * 1024 * 1024);
  });
});
