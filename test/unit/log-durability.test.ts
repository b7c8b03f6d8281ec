/**
 * The local daemon's log lines survive the process being killed: each is on standard output
 * when the logging call returns. A child process logs a burst of lines and kills itself with
 * SIGKILL at once, before the event loop turns; every line must be in what it wrote.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, expect, it } from "vitest";

const root = fileURLToPath(new URL("../..", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "log-durability-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it("every line logged before a kill -9 reaches standard output", async () => {
  const script = join(dir, "burst.mts");
  writeFileSync(
    script,
    `
const { logger } = await import(${JSON.stringify(join(root, "src/observability/logger.ts"))});
for (let i = 0; i < 500; i++) logger.info({ n: i }, "burst line");
process.kill(process.pid, "SIGKILL");
`,
  );
  const child = spawn(process.execPath, ["--import", "tsx", script], {
    cwd: root,
    env: { ...process.env, LOG_LEVEL: "info" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let output = "";
  child.stdout.on("data", (c: Buffer) => (output += c.toString()));
  const signal = await new Promise<NodeJS.Signals | null>((resolve) => child.on("close", (_code, s) => resolve(s)));
  expect(signal).toBe("SIGKILL");
  const lines = output.split("\n").filter((l) => l.includes("burst line"));
  expect(lines).toHaveLength(500);
  expect(JSON.parse(lines[499] ?? "{}")).toMatchObject({ level: "INFO", n: 499, message: "burst line" });
}, 30_000);
