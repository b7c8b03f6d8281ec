#!/usr/bin/env node
import { rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
/**
 * Bundles the local daemon (src/local/main.ts) into one ESM entry on plain Node, which is what
 * `npm start` runs: it starts faster and uses less memory than running the TypeScript through a
 * loader (see docs/benchmarks.md). Packages stay external (node_modules); our code is inlined.
 * Code splitting keeps the handler modules' dynamic imports real, as in the Lambda bundles.
 *
 * Usage: node scripts/build-local.mjs [--out-dir <dir>]   (default dist/local)
 */
import { build } from "esbuild";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const outIndex = process.argv.indexOf("--out-dir");
const outDir = outIndex > 0 ? resolve(process.argv[outIndex + 1]) : join(repoRoot, "dist", "local");

rmSync(outDir, { recursive: true, force: true });
await build({
  entryPoints: { main: join(repoRoot, "src", "local", "main.ts") },
  outdir: outDir,
  outExtension: { ".js": ".mjs" },
  chunkNames: "chunks/[name]-[hash]",
  splitting: true,
  absWorkingDir: repoRoot,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  packages: "external",
  sourcemap: "linked",
  logLevel: "warning",
});
console.log(join(outDir, "main.mjs"));
