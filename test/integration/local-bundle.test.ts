/**
 * The local daemon as `npm start` runs it (scripts/build-local.mjs's bundle and node options):
 * a daemon that cannot start says why, with a stack that names the TypeScript function and file
 * (the bundle is minified), and exits 1 instead of ending with 0 and nothing listening; its
 * source maps hold positions and names but not the sources' text, which would otherwise sit in
 * the daemon's heap (about 6.5 MiB), nor does it carry zod's messages in other languages; once
 * quiet after requests it gives its memory back, and while idle nothing wakes it.
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

/** Starts the bundled daemon on a free port and waits for its health check. */
async function startBundled(env: Record<string, string>) {
  const holder = createServer();
  await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", resolve));
  const { port } = holder.address() as AddressInfo;
  await new Promise((resolve) => holder.close(resolve));
  const child = spawn(process.execPath, bundle.nodeArgs, {
    env: {
      ...process.env,
      SERVER_KEY: "k",
      STORE_BACKEND: "local",
      SERVER_HOST: "127.0.0.1",
      SERVER_PORT: String(port),
      ...env,
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let output = "";
  child.stdout.on("data", (c: Buffer) => (output += c));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  while (
    !(await fetch(`${url}/health/check`).then(
      (r) => r.ok,
      () => false,
    ))
  ) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`bundled daemon did not start:\n${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    pid: child.pid as number,
    lines: () =>
      output
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as LogLine & Record<string, unknown>),
    stop: () => child.kill("SIGKILL"),
  };
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

  it("carries zod's English messages only, not its ~50 other locales (1.5 MiB of an idle daemon)", () => {
    const code = readdirSync(bundle.outDir, { recursive: true, encoding: "utf8" })
      .filter((f) => f.endsWith(".mjs"))
      .map((f) => readFileSync(join(bundle.outDir, f), "utf8"));
    expect(code.some((c) => c.includes("Invalid input"))).toBe(true);
    expect(code.some((c) => c.includes("Ongeldige invoer"))).toBe(false); // Dutch, all ASCII as the bundle writes it
  });

  it("loads node's web streams only when asked (middy's import of them: 0.5 MiB of an idle daemon)", async () => {
    const files = readdirSync(bundle.outDir, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".mjs"));
    const code = files.map((f) => readFileSync(join(bundle.outDir, f), "utf8"));
    expect(code.some((c) => /from\s*"node:stream\/web"/.test(c))).toBe(false);
    // The stand-in answers `instanceof` as the real class does.
    const middy = files.find((_, i) => code[i]!.includes('__require("node:stream/web").ReadableStream'));
    expect(middy).toBeDefined();
    const { ReadableStream } = await import("node:stream/web");
    const standIn = new Function(
      "__require",
      `return ${/var (ReadableStream\w*)=(class\{static\[Symbol\.hasInstance\][^}]*\}\})/.exec(code[files.indexOf(middy!)]!)![2]}`,
    )((id: string) => (id === "node:stream/web" ? { ReadableStream } : undefined));
    expect(new ReadableStream() instanceof standIn).toBe(true);
    expect({} instanceof standIn).toBe(false);
  });

  it("collects its garbage once quiet for MEMORY_RELEASE_IDLE_SECONDS after requests, and serves on", async () => {
    const d = await startBundled({
      DATA_DIR: join(scratch, "quiet"),
      LOG_LEVEL: "debug",
      MEMORY_RELEASE_IDLE_SECONDS: "1",
    });
    try {
      const collected = () => d.lines().filter((l) => l.message === "daemon quiet: memory collected");
      const list = () =>
        fetch(`${d.url}/plugin/${"5".repeat(8)}-aaaa-4000-8000-000000000001/management/list?page=1&page_size=10`, {
          headers: { "x-api-key": "k" },
        }).then((r) => r.status);
      // Requests arriving closer together than the quiet period: no collection meanwhile.
      for (let i = 0; i < 8; i++) {
        expect(await list()).toBe(200);
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(collected()).toHaveLength(0);
      await new Promise((r) => setTimeout(r, 2500));
      expect(collected()).toHaveLength(1);
      expect(collected()[0]).toMatchObject({ gcMs: expect.any(Number), rssAfterMiB: expect.any(Number) });
      expect(await list()).toBe(200);
    } finally {
      d.stop();
    }
  });

  it("is not woken while idle, scraped and probed: no timer of its own fires", async () => {
    const d = await startBundled({ DATA_DIR: join(scratch, "idle") });
    try {
      const metrics = await fetch(`${d.url}/metrics`).then((r) => r.text());
      expect(metrics).toMatch(/^nodejs_eventloop_lag_p99_seconds \d/m);
      await new Promise((r) => setTimeout(r, 1000));
      const wakeUps = () =>
        Number(/^voluntary_ctxt_switches:\s+(\d+)$/m.exec(readFileSync(`/proc/${d.pid}/status`, "utf8"))?.[1]);
      const before = wakeUps();
      expect((await fetch(`${d.url}/health/check`)).status).toBe(200);
      expect((await fetch(`${d.url}/metrics`)).status).toBe(200);
      await new Promise((r) => setTimeout(r, 3000));
      // prom-client's event-loop monitor alone woke it every 10 ms: about 300 in these 3 s.
      expect(wakeUps() - before).toBeLessThan(30);
    } finally {
      d.stop();
    }
  }, 30_000);
});
