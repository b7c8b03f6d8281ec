/** Locations the benchmark uses: the repository, its own build directory, results, and a cache outside the repo. */
import { homedir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const benchDir = join(repoRoot, "bench");
export const buildDir = join(benchDir, ".build");
export const resultsDir = join(benchDir, "results");

/** Same cache root as the local daemon's toolchain (scripts/python-toolchain.sh). */
export const cacheDir = (): string =>
  process.env.DIFY_DAEMON_CACHE ?? join(process.env.HOME ?? homedir(), ".cache", "dify-plugin-daemon-aws");

/** A path as it may appear in committed results: relative to the repository when inside it. */
export function displayPath(path: string): string {
  const rel = relative(repoRoot, path);
  return rel.startsWith("..") ? "<outside repo>" : rel;
}
