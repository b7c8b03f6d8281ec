#!/usr/bin/env node
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { gzipSync } from "node:zlib";
/**
 * Bundles every Lambda entry `functions/<name>.ts` into `dist/functions/<name>/index.mjs`.
 *
 * Usage: node scripts/bundle.mjs [--check] [--quiet] [--budget-kb N] [--functions-dir <dir>] [--out-dir <dir>]
 *   --check      exit non-zero when a bundle is over the size budget
 *   --budget-kb  size budget for the code loaded at init (default 500)
 *
 * Why these settings:
 * - ESM + node22 target: the Lambda runtime is Node.js 22; `.mjs` makes it load as ESM without a
 *   package.json next to the bundle.
 * - The AWS SDK is bundled rather than taken from the runtime, so behaviour is pinned to the
 *   versions in package-lock.json and tree-shaking keeps only the commands we use.
 * - A createRequire banner lets bundled CommonJS dependencies `require()` Node built-ins.
 * - Local-only native modules (better-sqlite3, used by the local daemon's store) are external and
 *   must never be reached from a Lambda entry: a static import of one fails the build.
 * - The SDK's default credential chain (env, SSO, ini files, process, web identity, container and
 *   instance metadata) is replaced by an environment-only provider: Lambda always puts the execution
 *   role's credentials in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, and the rest of
 *   the chain adds ~90 KB of code to every bundle.
 * - zod's message locales other than English are left out (see zodEnglishOnly).
 * - Code splitting: code reached only through `import()` goes into `chunks/` and is loaded on
 *   first use, so it costs nothing at init (and local-only paths are never loaded in Lambda).
 * - Source maps are written next to the bundle (external, no sourceMappingURL comment) so they
 *   can be used to decode stack traces but are not shipped: the CDK asset excludes `*.map`.
 */
import { build } from "esbuild";
import { zodEnglishOnly } from "./zod-english-only.mjs";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/**
 * Budget for the code a function loads at init (uncompressed): parse/compile time at cold start
 * scales with it. Chunks loaded later (on first use) are reported in `bytes` but not budgeted.
 */
export const SIZE_BUDGET_BYTES = 500 * 1024;

/** Modules only the local daemon uses; kept out of Lambda bundles. */
export const LOCAL_ONLY_MODULES = ["better-sqlite3", "pino-pretty"];

/** Entry names become directory and Lambda asset names. */
const ENTRY_NAME = /^[a-z0-9][a-z0-9-]*$/;

/** Stands in for `@aws-sdk/credential-provider-node`, whose only export the clients use is `defaultProvider`. */
const LAMBDA_CREDENTIALS_MODULE = `
export const defaultProvider = () => async () => {
  const { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey, AWS_SESSION_TOKEN: sessionToken } = process.env;
  if (!accessKeyId || !secretAccessKey) {
    const error = new Error("no AWS credentials in the environment (Lambda sets AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)");
    error.name = "CredentialsProviderError";
    throw error;
  }
  return sessionToken ? { accessKeyId, secretAccessKey, sessionToken } : { accessKeyId, secretAccessKey };
};
`;

/** @type {import("esbuild").Plugin} */
const lambdaCredentials = {
  name: "lambda-environment-credentials",
  setup(build) {
    build.onResolve({ filter: /^@aws-sdk\/credential-provider-node$/ }, () => ({
      path: "lambda-environment-credentials",
      namespace: "lambda-environment-credentials",
    }));
    build.onLoad({ filter: /.*/, namespace: "lambda-environment-credentials" }, () => ({
      contents: LAMBDA_CREDENTIALS_MODULE,
      loader: "js",
    }));
  },
};

const BANNER = [
  'import { createRequire as __bundleCreateRequire } from "node:module";',
  'import { fileURLToPath as __bundleFileURLToPath } from "node:url";',
  'import { dirname as __bundleDirname } from "node:path";',
  "const require = __bundleCreateRequire(import.meta.url);",
  "const __filename = __bundleFileURLToPath(import.meta.url);",
  "const __dirname = __bundleDirname(__filename);",
].join("\n");

/**
 * Lists the Lambda entries: every `*.ts` directly in `functionsDir`, except tests and declarations.
 * @param {string} functionsDir
 * @returns {{ name: string, file: string }[]}
 */
export function findEntries(functionsDir) {
  if (!existsSync(functionsDir)) return [];
  return readdirSync(functionsDir)
    .filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts") && !f.endsWith(".test.ts"))
    .sort()
    .map((f) => {
      const name = basename(f, ".ts");
      if (!ENTRY_NAME.test(name)) throw new Error(`bundle: entry name "${name}" must match ${ENTRY_NAME}`);
      return { name, file: join(functionsDir, f) };
    });
}

/**
 * Bundles all entries and returns their sizes. Throws on build errors or when a Lambda bundle
 * statically imports a local-only module.
 * @param {{ functionsDir?: string, outDir?: string, budgetBytes?: number, log?: (line: string) => void }} [options]
 */
export async function bundleFunctions(options = {}) {
  const functionsDir = resolve(options.functionsDir ?? join(repoRoot, "functions"));
  const outDir = resolve(options.outDir ?? join(repoRoot, "dist", "functions"));
  const log = options.log ?? (() => {});
  const budgetBytes = options.budgetBytes ?? SIZE_BUDGET_BYTES;
  const entries = findEntries(functionsDir);
  if (entries.length === 0) throw new Error(`bundle: no entries found in ${functionsDir}`);

  // Start clean so a deleted entry never leaves a stale bundle behind for the CDK app to deploy.
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });

  // One build per entry, so each function's directory is self-contained (its asset is that directory).
  const builds = await Promise.all(entries.map((entry) => buildEntry(entry, join(outDir, entry.name))));
  const metafiles = {};
  const functions = {};
  for (const [i, { name }] of entries.entries()) {
    const { metafile, warnings } = builds[i];
    for (const w of warnings) log(`bundle: warning: ${name}: ${w.text}`);
    metafiles[name] = metafile;
    const dir = join(outDir, name);
    const entryKey = toMetafileKey(join(dir, "index.mjs"));
    const loadedAtInit = staticClosure(metafile, entryKey);
    checkLocalOnlyImports(name, metafile, loadedAtInit, log);
    const files = Object.keys(metafile.outputs).filter((k) => k.endsWith(".mjs"));
    for (const f of files) assertParses(join(repoRoot, f));
    const sizeOf = (keys) => keys.reduce((sum, k) => sum + statSync(join(repoRoot, k)).size, 0);
    const code = Buffer.concat(files.map((f) => readFileSync(join(repoRoot, f))));
    const bytes = sizeOf(files);
    const initBytes = sizeOf([...loadedAtInit]);
    functions[name] = {
      // Everything deployed: the entry and every lazily loaded chunk, including ones only the
      // local daemon's code paths load.
      bytes,
      gzipBytes: gzipSync(code, { level: 9 }).length,
      // What Node loads and compiles before the handler can run (the entry and its static
      // imports): the cold-start cost, and what the budget applies to.
      initBytes,
      files: files.length,
      sourceMapBytes: sizeOf(Object.keys(metafile.outputs).filter((k) => k.endsWith(".map"))),
      withinBudget: initBytes <= budgetBytes,
    };
  }
  writeFileSync(join(outDir, "metafile.json"), JSON.stringify(metafiles));
  const sizes = { budgetBytes, functions };
  writeFileSync(join(outDir, "sizes.json"), `${JSON.stringify(sizes, null, 2)}\n`);
  return sizes;
}

/**
 * Code splitting is on so that code reached only through `import()` (e.g. the local daemon's
 * SQLite store behind a runtime switch) lands in a chunk that Lambda never loads.
 */
function buildEntry(entry, dir) {
  return build({
    entryPoints: { index: entry.file },
    outdir: dir,
    chunkNames: "chunks/[name]-[hash]",
    outExtension: { ".js": ".mjs" },
    absWorkingDir: repoRoot,
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node22",
    // Prefer ESM builds of dependencies (the AWS SDK ships `module` builds) for better tree-shaking.
    mainFields: ["module", "main"],
    minify: true,
    treeShaking: true,
    sourcemap: "external",
    legalComments: "external",
    banner: { js: BANNER },
    external: LOCAL_ONLY_MODULES,
    define: { "process.env.NODE_ENV": '"production"' },
    plugins: [lambdaCredentials, zodEnglishOnly],
    metafile: true,
    logLevel: "silent",
  });
}

const toMetafileKey = (file) => relative(repoRoot, file).split("\\").join("/");

/** Output files loaded with the entry: it and everything it reaches through static imports. */
function staticClosure(metafile, entryKey) {
  const seen = new Set();
  const visit = (key) => {
    if (seen.has(key) || !metafile.outputs[key]) return;
    seen.add(key);
    for (const imp of metafile.outputs[key].imports) {
      if (!imp.external && imp.kind === "import-statement") visit(imp.path);
    }
  };
  visit(entryKey);
  if (seen.size === 0) throw new Error(`bundle: esbuild produced no output ${entryKey}`);
  return seen;
}

const isLocalOnly = (path) => LOCAL_ONLY_MODULES.some((m) => path === m || path.startsWith(`${m}/`));

/**
 * A local-only module reached at init would crash the Lambda (it is not shipped): that fails the
 * build. One that only a lazily loaded chunk imports is fine as long as Lambda never takes that
 * path; it is reported so the reason stays visible.
 */
function checkLocalOnlyImports(name, metafile, loadedAtInit, log) {
  for (const [key, output] of Object.entries(metafile.outputs)) {
    for (const imp of output.imports ?? []) {
      if (!imp.external || !isLocalOnly(imp.path)) continue;
      if (loadedAtInit.has(key) && imp.kind !== "dynamic-import") {
        throw new Error(
          `bundle: ${name} loads local-only module "${imp.path}" at init (${key}); keep it off the Lambda path`,
        );
      }
      log(`bundle: note: ${name}: local-only "${imp.path}" is only in a lazily loaded chunk (${key.split("/").pop()})`);
    }
  }
}

/** Catches early errors such as a banner name colliding with a bundled top-level declaration. */
function assertParses(file) {
  const check = spawnSync(process.execPath, ["--check", file], { encoding: "utf8" });
  if (check.status !== 0) throw new Error(`bundle: ${file} does not parse:\n${check.stderr}`);
}

/** @param {{ budgetBytes: number, functions: Record<string, { bytes: number, initBytes: number, gzipBytes: number, withinBudget: boolean }> }} sizes */
export function formatSizeTable(sizes) {
  const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
  const rows = Object.entries(sizes.functions).map(([name, s]) => [
    name,
    kb(s.bytes),
    kb(s.initBytes),
    kb(s.gzipBytes),
    `${((s.initBytes / sizes.budgetBytes) * 100).toFixed(0)}%`,
    s.withinBudget ? "ok" : "OVER",
  ]);
  const header = ["function", "total", "at init", "total gzip", `init/${kb(sizes.budgetBytes)}`, "budget"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

function parseArgs(argv) {
  const args = {
    check: false,
    quiet: false,
    functionsDir: undefined,
    outDir: undefined,
    budgetBytes: SIZE_BUDGET_BYTES,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--check") args.check = true;
    else if (a === "--quiet") args.quiet = true;
    else if (a === "--functions-dir") args.functionsDir = argv[++i];
    else if (a === "--out-dir") args.outDir = argv[++i];
    else if (a === "--budget-kb") {
      const kb = Number(argv[++i]);
      if (!(kb > 0)) throw new Error("bundle: --budget-kb needs a positive number");
      args.budgetBytes = kb * 1024;
    } else throw new Error(`bundle: unknown argument ${a}`);
  }
  return args;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const sizes = await bundleFunctions({ ...args, log: (l) => console.error(l) });
  if (!args.quiet) console.log(formatSizeTable(sizes));
  const over = Object.entries(sizes.functions).filter(([, s]) => !s.withinBudget);
  if (over.length > 0) {
    const names = over.map(([n]) => n).join(", ");
    console.error(`bundle: code loaded at init is over the ${sizes.budgetBytes / 1024} KB budget: ${names}`);
    if (args.check) process.exit(1);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  main().catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
