#!/usr/bin/env node
import { rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
/**
 * Bundles the local daemon (src/local/main.ts) into one ESM entry on plain Node, which is what
 * `npm start` runs: it starts faster and uses less memory than running the TypeScript through a
 * loader (see docs/benchmarks.md). Code splitting keeps the handler modules' dynamic imports
 * real, as in the Lambda bundles.
 *
 * Dependencies are bundled too (one module graph parsed once, instead of hundreds of files each
 * resolved and loaded by Node's ESM loader: about 7 MiB less resident memory at start), except
 * native ones, which load their compiled addon from node_modules. A createRequire banner lets
 * bundled CommonJS dependencies `require()` Node built-ins.
 *
 * Prints the node options the daemon runs with (NODE_FLAGS), one per line, then the entry:
 * scripts/start-local.sh and the benchmark both run exactly `node <those lines>`.
 *
 * Usage: node scripts/build-local.mjs [--out-dir <dir>]   (default dist/local)
 */
import { build } from "esbuild";
import { lazyWebStreams } from "./lazy-web-streams.mjs";
import { zodEnglishOnly } from "./zod-english-only.mjs";

/** Packages with a compiled addon: left in node_modules. */
export const NATIVE_PACKAGES = ["better-sqlite3"];

/**
 * The node options the daemon runs with. V8's defaults size the heap for throughput, not for a
 * router: under load the young generation grows to two 16 MiB semi-spaces and the old one to
 * several times what is live before a full collection, 112-161 MiB resident against 73 MiB for
 * upstream's Go daemon. Two limits take that to 84-85 MiB (docs/benchmarks.md, 2026-12-02):
 *  - 1 MiB semi-spaces: alone they save nothing, as the old generation fills with what survives
 *    the more frequent scavenges (125 MiB peak);
 *  - old-generation growth of 40 % over what a full collection left: with 1 MiB semi-spaces it
 *    holds the peak. 20 % saved a megabyte more and cost the c=16 tail (p99 up to 1.2x
 *    upstream's), 4 MiB semi-spaces with 20 % held 91 MiB and cost the streams' c=16 latency.
 * --optimize-for-size (which also sets 1 MiB semi-spaces) gives the same memory for more daemon
 * CPU per echo call: 0.98-1.01x upstream's at c=1, 0.84-0.92x with these two. What is left after
 * a burst goes back when the daemon goes quiet (src/local/idle-memory.ts).
 *
 * Incremental marking starts once 35 % of the room between the last full collection and that
 * limit is used, not when the limit is near. The limit is what was live plus at least 8 MiB
 * whatever the growth factor (V8's minimum step, seen with --trace-gc-verbose), and most of a
 * request's survivors are garbage by the time a collection looks at them: starting earlier takes
 * the peak under load from 79.3-79.9 to 74.6-75.7 MiB for up to 13 % more daemon CPU per call.
 * 10 and 20 % saved no more and cost 25-40 %; 50 % saved 3.5 MiB. The price is paid by
 * huge transient strings, allocated while marking runs and so kept a cycle longer: 4 concurrent
 * 50 MiB plugin answers (line cap raised from 5 to 64 MiB) peak at 442 MiB instead of 288
 * (docs/benchmarks.md, 2026-12-02, afternoon).
 *
 * One V8 worker thread instead of four (--v8-pool-size) for concurrent marking, sweeping and
 * compiling, whose work on a heap this size is small: fewer thread stacks and malloc arenas, about
 * 3 MiB less resident idle and under load, with no change in latency or CPU per call over two
 * side-by-side runs each way (docs/benchmarks.md, 2026-12-02, mid-morning).
 */
export const NODE_FLAGS = [
  "--max-semi-space-size=1",
  "--heap-growing-percent=40",
  "--incremental-marking-soft-trigger=35",
  "--v8-pool-size=1",
  "--enable-source-maps",
];

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
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
    external: NATIVE_PACKAGES,
    banner: {
      js: 'import { createRequire as __createRequire } from "node:module"; const require = __createRequire(import.meta.url);',
    },
    // Whitespace and syntax minified (about 1 MiB less resident: V8 keeps each script's source
    // for lazy compilation); identifiers are not, so names stay what the code says without
    // esbuild's keepNames, whose __name() call on every closure created cost 3 KiB of allocation
    // per dispatch. The source map restores positions in stack traces.
    minifyWhitespace: true,
    minifySyntax: true,
    // Stack traces need positions and names only. With the sources' text in the maps, node's
    // --enable-source-maps keeps every bundled file's source in the heap: 6.5 MiB resident.
    sourcemap: "linked",
    sourcesContent: false,
    plugins: [zodEnglishOnly, lazyWebStreams],
    logLevel: "warning",
  });
  console.log([...NODE_FLAGS, join(outDir, "main.mjs")].join("\n"));
}
