/**
 * The Python side both daemons need: uv (from scripts/python-toolchain.sh) and one CPython that
 * both run their plugin processes on. The Go daemon creates plugin virtualenvs with
 * `uv venv --python 3.12`, so a 3.12 is preferred; our daemon is given the same interpreter so
 * the plugin processes being compared are identical.
 */
import { execFile } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { repoRoot } from "./paths.js";

const run = promisify(execFile);

export interface Toolchain {
  uv: string;
  /** The interpreter both daemons' plugins run on. */
  python: string;
  pythonVersion: string;
  /** True when `python` is a 3.12, which the Go daemon's `uv venv --python 3.12` needs. */
  python312: boolean;
}

async function probe(path: string): Promise<{ path: string; version: string } | undefined> {
  try {
    const { stdout } = await run(
      path,
      ["-c", "import sys, ssl, sqlite3; print(sys.executable); print('%d.%d.%d' % sys.version_info[:3])"],
      {
        timeout: 15_000,
      },
    );
    const [exe, version] = stdout.trim().split("\n");
    return exe && version ? { path: exe, version } : undefined;
  } catch {
    return undefined;
  }
}

async function toolchainScript(what: "python" | "uv"): Promise<string> {
  const { stdout } = await run("bash", [join(repoRoot, "scripts", "python-toolchain.sh"), what], {
    timeout: 20 * 60_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout.trim();
}

/** Real (non-shim) CPython 3.12 executables this machine has. */
async function find312(): Promise<{ path: string; version: string } | undefined> {
  const candidates: string[] = [];
  if (process.env.BENCH_PYTHON) candidates.push(process.env.BENCH_PYTHON);
  candidates.push("python3.12");
  for (const root of [process.env.PYENV_ROOT, process.env.HOME && join(process.env.HOME, ".pyenv")]) {
    if (!root || !existsSync(join(root, "versions"))) continue;
    for (const v of readdirSync(join(root, "versions"))
      .filter((v) => /^3\.12\.\d+$/.test(v))
      .sort()
      .reverse()) {
      candidates.push(join(root, "versions", v, "bin", "python3.12"));
    }
  }
  for (const c of candidates) {
    const found = await probe(c);
    if (found?.version.startsWith("3.12.")) return found;
    if (found && c === process.env.BENCH_PYTHON) return found; // the operator's choice wins
  }
  return undefined;
}

export async function resolveToolchain(log: (line: string) => void): Promise<Toolchain> {
  const uv = await toolchainScript("uv");
  let chosen = await find312();
  if (!chosen) {
    const fallback = await toolchainScript("python");
    chosen = await probe(fallback);
    if (!chosen) throw new Error(`python-toolchain.sh returned ${fallback}, which does not run`);
    log(
      `no CPython 3.12 found (set BENCH_PYTHON); using ${chosen.version}: the Go daemon's uv venv --python 3.12 may download one`,
    );
  }
  return { uv, python: chosen.path, pythonVersion: chosen.version, python312: chosen.version.startsWith("3.12.") };
}
