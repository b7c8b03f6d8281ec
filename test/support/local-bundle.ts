/**
 * The local daemon as `npm start` runs it: scripts/build-local.mjs bundles src/local/main.ts and
 * prints the node arguments (its node options, then the entry), which the caller spawns with
 * `process.execPath`. The bundle goes under node_modules/.cache so its one external dependency
 * (better-sqlite3's native addon) resolves as it does from dist/local.
 */
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));

export interface LocalBundle {
  outDir: string;
  /** What follows `node` on the command line. */
  nodeArgs: string[];
  remove(): void;
}

export async function buildLocalBundle(): Promise<LocalBundle> {
  const cache = join(repoRoot, "node_modules", ".cache");
  mkdirSync(cache, { recursive: true });
  const outDir = mkdtempSync(join(cache, "local-bundle-"));
  const { stdout } = await promisify(execFile)(process.execPath, ["scripts/build-local.mjs", "--out-dir", outDir], {
    cwd: repoRoot,
  });
  return {
    outDir,
    nodeArgs: stdout.trim().split("\n"),
    remove: () => rmSync(outDir, { recursive: true, force: true }),
  };
}
