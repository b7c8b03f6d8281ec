/**
 * Lambda's managed runtimes on this machine: for a function's `Runtime`, the command line Lambda
 * starts its environments with (interpreter first, then the runtime interface client). An exec
 * wrapper (AWS_LAMBDA_EXEC_WRAPPER) receives exactly this command line as its arguments.
 *
 * - python3.X: a CPython of that very minor version (wheels built for cp312 do not load on 3.13)
 *   in a virtualenv with boto3, as the managed runtime ships it; made once with uv and cached.
 * - nodejs20.x / nodejs22.x: this machine's Node.js.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);

export const PYTHON_RUNTIME_CLIENT = fileURLToPath(new URL("./runtimes/python-runtime-client.py", import.meta.url));
export const NODE_RUNTIME_CLIENT = fileURLToPath(new URL("./runtimes/node-runtime-client.mjs", import.meta.url));

export interface ManagedRuntimesOptions {
  /** Where runtime virtualenvs are kept between runs. */
  cacheDir: string;
  /** uv, to make the virtualenvs. */
  uv: string;
  /** Interpreters to try before `python3.X` on PATH (e.g. the toolchain's). */
  pythonCandidates?: string[];
}

export class ManagedRuntimes {
  private readonly pythons = new Map<string, Promise<string>>();

  constructor(private readonly options: ManagedRuntimesOptions) {}

  /** The command line of the runtime's environments; throws for a runtime this machine cannot run. */
  async commandLine(runtime: string): Promise<string[]> {
    const python = /^python(3\.\d+)$/.exec(runtime);
    if (python) return [await this.python(python[1]!), PYTHON_RUNTIME_CLIENT];
    if (/^nodejs\d+\.x$/.test(runtime)) return [process.execPath, NODE_RUNTIME_CLIENT];
    throw new Error(`runtime ${runtime} is not available on this machine`);
  }

  /** The runtime's interpreter (the virtualenv's python), made on first use. */
  python(version: string): Promise<string> {
    let made = this.pythons.get(version);
    if (!made) {
      made = this.makePython(version);
      made.catch(() => this.pythons.delete(version));
      this.pythons.set(version, made);
    }
    return made;
  }

  private async makePython(version: string): Promise<string> {
    const venv = join(this.options.cacheDir, `python${version}`);
    const python = join(venv, "bin", "python");
    const stamp = join(venv, ".aws-local-runtime");
    if (existsSync(stamp) && existsSync(python)) return python;
    const base = await this.findInterpreter(version);
    await rm(venv, { recursive: true, force: true });
    await mkdir(this.options.cacheDir, { recursive: true });
    const env = { ...process.env, UV_PYTHON_DOWNLOADS: "never" };
    await run(this.options.uv, ["venv", "--quiet", "--python", base, venv], { env });
    // boto3 is part of the managed Python runtime (the plugin builder uses it).
    await run(this.options.uv, ["pip", "install", "--quiet", "--python", python, "boto3"], { env, timeout: 300_000 });
    await writeFile(stamp, `${base}\n`);
    return python;
  }

  private async findInterpreter(version: string): Promise<string> {
    for (const candidate of [...(this.options.pythonCandidates ?? []), `python${version}`]) {
      try {
        const { stdout } = await run(
          candidate,
          ["-c", "import sys; print('%d.%d' % sys.version_info[:2]); print(sys.executable)"],
          { timeout: 20_000 },
        );
        const [found, executable] = stdout.trim().split("\n");
        if (found === version && executable) return executable;
      } catch {
        // Not installed, or not runnable.
      }
    }
    throw new Error(
      `runtime python${version} needs a CPython ${version} on this machine (python${version} on PATH); none was found`,
    );
  }
}
