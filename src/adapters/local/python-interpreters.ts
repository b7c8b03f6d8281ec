/**
 * Finds a Python for a plugin's `meta.runner.version`. Rule: same major version and a minor
 * version at least the requested one, preferring the closest (a plugin built for 3.12 runs on
 * 3.13; the SDK supports both). Candidates: PYTHON_INTERPRETER_PATH, the interpreter that
 * scripts/python-toolchain.sh builds into the cache, then python3.x on PATH.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface Interpreter {
  path: string;
  major: number;
  minor: number;
}

export const toolchainCacheDir = (): string =>
  process.env.DIFY_DAEMON_CACHE ?? join(process.env.HOME ?? homedir(), ".cache", "dify-plugin-daemon-aws");

export function candidatePaths(configured: string | undefined): string[] {
  const cache = toolchainCacheDir();
  const names = ["python3.14", "python3.13", "python3.12", "python3.11", "python3"];
  return [
    configured,
    process.env.DIFY_PLUGIN_PYTHON,
    join(cache, "python", "3.13", "bin", "python3.13"),
    ...names,
  ].filter((p): p is string => !!p && (!p.includes("/") || existsSync(p)));
}

async function probe(path: string): Promise<Interpreter | undefined> {
  try {
    const { stdout } = await run(path, ["-c", "import sys; print(sys.executable, *sys.version_info[:2])"], {
      timeout: 10_000,
    });
    const [exe, major, minor] = stdout.trim().split(" ");
    return exe ? { path: exe, major: Number(major), minor: Number(minor) } : undefined;
  } catch {
    return undefined;
  }
}

export class PythonInterpreters {
  private found: Promise<Interpreter[]> | undefined;

  constructor(private readonly configured?: string) {}

  /** The best interpreter for `requested` ("3.12"), or an error message saying what is missing. */
  async select(requested: string): Promise<Interpreter> {
    const [major, minor = 0] = requested.split(".").map(Number);
    if (!Number.isInteger(major)) throw new Error(`invalid meta.runner.version "${requested}"`);
    const all = await (this.found ??= this.discover());
    const fitting = all.filter((i) => i.major === major && i.minor >= minor).sort((a, b) => a.minor - b.minor);
    const best = fitting[0];
    if (!best) {
      const seen = all.map((i) => `${i.major}.${i.minor}`).join(", ") || "none";
      throw new Error(
        `no Python interpreter >= ${requested} found for this plugin (found: ${seen}); ` +
          "run scripts/python-toolchain.sh or set PYTHON_INTERPRETER_PATH",
      );
    }
    return best;
  }

  private async discover(): Promise<Interpreter[]> {
    const probed = await Promise.all(candidatePaths(this.configured).map(probe));
    const unique = new Map<string, Interpreter>();
    for (const i of probed) if (i && !unique.has(i.path)) unique.set(i.path, i);
    return [...unique.values()];
  }
}
