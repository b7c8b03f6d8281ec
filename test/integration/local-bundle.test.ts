/**
 * The local daemon as `npm start` runs it (scripts/build-local.mjs's bundle and node options):
 * a daemon that cannot start says why, with a stack that names the TypeScript function and file
 * (the bundle is minified), and exits 1 instead of ending with 0 and nothing listening; its
 * source maps hold positions and names but not the sources' text, which would otherwise sit in
 * the daemon's heap (about 6.5 MiB).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildLocalBundle, type LocalBundle } from "../support/local-bundle.js";

let bundle: LocalBundle;
const scratch = mkdtempSync(join(tmpdir(), "local-bundle-"));
beforeAll(async () => {
  bundle = await buildLocalBundle();
}, 60_000);
afterAll(() => {
  bundle?.remove();
  rmSync(scratch, { recursive: true, force: true });
});

/** Runs the bundled daemon until it exits (or 30 s), with its log lines parsed. */
async function runUntilExit(env: Record<string, string>): Promise<{ code: number | null; lines: LogLine[] }> {
  const child = spawn(process.execPath, bundle.nodeArgs, {
    env: { ...process.env, SERVER_KEY: "k", STORE_BACKEND: "local", SERVER_HOST: "127.0.0.1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (c: Buffer) => (output += c));
  child.stderr.on("data", (c: Buffer) => (output += c));
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  clearTimeout(timer);
  const lines = output
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as LogLine);
  return { code, lines };
}

interface LogLine {
  level: string;
  message: string;
  err?: { message: string; stack: string };
}

describe("the bundled local daemon", () => {
  it("exits 1 with the reason, its stack naming the TypeScript source, when it cannot open its store", async () => {
    const notADirectory = join(scratch, "data-is-a-file");
    writeFileSync(notADirectory, "");
    const { code, lines } = await runUntilExit({ DATA_DIR: notADirectory, SERVER_PORT: "0" });
    expect(code).toBe(1);
    const failure = lines.find((l) => l.message === "the daemon could not start");
    expect(failure?.err?.message).toContain(notADirectory);
    expect(failure?.err?.stack).toMatch(/at \S*inDirectory \(.*src\/adapters\/local\/sqlite-item-store\.ts:\d+:\d+\)/);
  });

  it("exits 1 when its port is taken", async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = holder.address() as AddressInfo;
      const { code, lines } = await runUntilExit({ DATA_DIR: join(scratch, "data"), SERVER_PORT: String(port) });
      expect(code).toBe(1);
      expect(lines.find((l) => l.message === "the daemon could not start")?.err?.message).toContain("EADDRINUSE");
    } finally {
      holder.close();
    }
  });

  it("ships source maps with positions and names but not the sources' text", () => {
    const maps = readdirSync(bundle.outDir, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".map"));
    expect(maps.length).toBeGreaterThan(1);
    const read = (file: string) =>
      JSON.parse(readFileSync(join(bundle.outDir, file), "utf8")) as { sources: string[]; mappings: string };
    for (const file of maps) expect(read(file), file).not.toHaveProperty("sourcesContent");
    const entry = read("main.mjs.map");
    expect(entry.mappings.length).toBeGreaterThan(1000);
    expect(entry.sources.some((s) => s.endsWith("/src/local/main.ts"))).toBe(true);
  });
});
