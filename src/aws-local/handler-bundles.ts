/**
 * The handler bundles the stack deploys (scripts/bundle.mjs, as `cdk synth` runs it), kept per
 * content of the sources they are built from: a second start with the same sources reuses them
 * instead of bundling again (tens of seconds on a small machine).
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { REPO_ROOT } from "./stack-template.js";

/** What a bundle is made of: the handlers, the code they import, the locked dependencies, the bundler. */
const SOURCES = ["functions", "src", "package-lock.json", "scripts/bundle.mjs"];
const KEPT = 3;

export async function handlerBundles(cacheDir: string, log: (line: string) => void = () => undefined): Promise<string> {
  const digest = await sourceDigest();
  const root = join(cacheDir, "bundles");
  const dir = join(root, digest);
  if (existsSync(join(dir, ".complete"))) return dir;
  await mkdir(root, { recursive: true });
  const building = join(root, `${digest}.building-${process.pid}`);
  log("bundling the handlers (scripts/bundle.mjs), once for these sources");
  await new Promise<void>((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [join(REPO_ROOT, "scripts", "bundle.mjs"), "--quiet", "--out-dir", building],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.once("error", reject);
    child.once("exit", (code) =>
      code === 0 ? resolve() : reject(new Error(`scripts/bundle.mjs failed (exit ${code}):\n${stderr}`)),
    );
  });
  await writeFile(join(building, ".complete"), digest);
  // Another start may have finished the same bundle meanwhile; either copy is good.
  await rename(building, dir).catch(async () => rm(building, { recursive: true, force: true }));
  await prune(root, digest);
  return dir;
}

async function sourceDigest(): Promise<string> {
  const hash = createHash("sha256");
  const files = (await Promise.all(SOURCES.map((s) => filesUnder(join(REPO_ROOT, s))))).flat().sort();
  for (const file of files) {
    hash.update(relative(REPO_ROOT, file));
    hash.update(await readFile(file));
  }
  return hash.digest("hex").slice(0, 16);
}

async function filesUnder(path: string): Promise<string[]> {
  const info = await stat(path).catch(() => undefined);
  if (!info) return [];
  if (info.isFile()) return [path];
  const entries = await readdir(path, { withFileTypes: true });
  const nested = await Promise.all(entries.map((e) => filesUnder(join(path, e.name))));
  return nested.flat();
}

/** Keeps the newest few bundles. */
async function prune(root: string, keep: string): Promise<void> {
  const entries = await readdir(root, { withFileTypes: true });
  const dated = await Promise.all(
    entries
      .filter((e) => e.isDirectory() && e.name !== keep && !e.name.includes(".building-"))
      .map(async (e) => ({ name: e.name, at: (await stat(join(root, e.name))).mtimeMs })),
  );
  for (const old of dated.sort((a, b) => b.at - a.at).slice(KEPT - 1))
    await rm(join(root, old.name), { recursive: true, force: true });
}
