/**
 * A plugin's directory on disk: the unpacked package plus its own virtualenv with the plugin's
 * requirements. Built in a temporary directory and renamed into place, so a failed build
 * leaves nothing half-made behind; a marker file says the environment is complete.
 */
import { existsSync, readFileSync } from "node:fs";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { runnerOf } from "../../domain/declaration-facts.js";
import { identifierParts, isUniqueIdentifier, type PluginUniqueIdentifier } from "../../domain/identifier.js";
import type { InstallablePlugin } from "../../ports/plugin-runtime.js";
import { scrubbedEnvironment, signalGroup, spawnWatchedGroup } from "./child-processes.js";
import { type PythonInterpreters, toolchainCacheDir } from "./python-interpreters.js";

const MARKER = join(".venv", "dify", "plugin.json");

export interface PluginEnvironmentOptions {
  workDir: string;
  interpreters: PythonInterpreters;
  uvPath?: string;
  pipMirrorUrl?: string;
  /** Kill the installer when it prints nothing for this long. */
  envInitTimeoutSeconds: number;
}

export function pluginDirectory(workDir: string, uniqueIdentifier: PluginUniqueIdentifier): string {
  const id = identifierParts(uniqueIdentifier);
  return join(workDir, id.author ?? "_", `${id.name}-${id.version}@${id.checksum}`);
}

export const isEnvironmentReady = (dir: string): boolean => existsSync(join(dir, MARKER));

/** The unique identifier a ready plugin directory was built for (undefined when it is not ready or not valid). */
export function environmentIdentifier(dir: string): PluginUniqueIdentifier | undefined {
  try {
    const marker = JSON.parse(readFileSync(join(dir, MARKER), "utf8")) as { unique_identifier?: unknown };
    const raw = marker.unique_identifier;
    return typeof raw === "string" && isUniqueIdentifier(raw) ? raw : undefined;
  } catch {
    return undefined;
  }
}

/** Half-built directories carry this in their name; recover() removes them after a crash. */
export const STAGING_MARK = ".building-";

/**
 * How a plugin's dependencies are installed, chosen as upstream chooses
 * (internal/core/local_runtime/setup_python_environment.go @ bdb5642a, detectDependencyFileType and
 * prepareSyncArgs): pyproject.toml with `uv sync --no-dev`, `--frozen` when the package ships a
 * uv.lock so exactly the locked versions are installed; requirements.txt with `uv pip install -r`;
 * with a mirror configured, requirements.txt wins so lock URLs of another index do not apply.
 */
export function dependencyPlan(files: { pyproject: boolean; uvLock: boolean; requirements: boolean }, mirror: boolean) {
  if (files.requirements && (mirror || !files.pyproject))
    return { method: "uv pip install -r requirements.txt", file: "requirements.txt" } as const;
  if (files.pyproject)
    return {
      method: files.uvLock ? "uv sync --frozen (uv.lock)" : "uv sync (pyproject.toml)",
      file: "pyproject.toml",
      frozen: files.uvLock,
    } as const;
  return undefined;
}

export async function buildEnvironment(
  plugin: InstallablePlugin,
  options: PluginEnvironmentOptions,
  progress: (message: string) => void,
  signal?: AbortSignal,
): Promise<string> {
  const dir = pluginDirectory(options.workDir, plugin.uniqueIdentifier);
  if (isEnvironmentReady(dir)) return dir;
  const runner = runnerOf(plugin.declaration);
  const python = await options.interpreters.select(runner.version);
  const staging = `${dir}${STAGING_MARK}${process.pid}-${Date.now()}`;
  const run = (command: string, args: string[]) =>
    runInstaller(python.path, command, args, staging, options, progress, signal);
  try {
    progress("unpacking plugin");
    const archive = await plugin.archive();
    for (const entry of archive.entries) {
      const target = join(staging, entry.name);
      await mkdir(dirname(target), { recursive: true });
      await writeFile(target, entry.data);
    }
    // The SDK scans _assets/ at start and crashes without it.
    await mkdir(join(staging, "_assets"), { recursive: true });
    const uv = options.uvPath ?? defaultUv();
    progress(`creating virtualenv with Python ${python.major}.${python.minor}`);
    if (uv) await run(uv, ["venv", "--python", python.path, ".venv"]);
    else await run(python.path, ["-m", "venv", ".venv"]);
    const has = (name: string) => existsSync(join(staging, name));
    const plan = dependencyPlan(
      { pyproject: has("pyproject.toml"), uvLock: has("uv.lock"), requirements: has("requirements.txt") },
      Boolean(options.pipMirrorUrl),
    );
    if (plan) {
      progress(`installing dependencies: ${plan.method}`);
      const mirror = options.pipMirrorUrl ? ["-i", options.pipMirrorUrl] : [];
      const venvPython = join(staging, ".venv", "bin", "python");
      try {
        if (plan.file === "pyproject.toml") {
          if (!uv) throw new Error("pyproject.toml plugins need uv (set UV_PATH)");
          await run(uv, [
            "sync",
            "--no-dev",
            ...(plan.frozen ? ["--frozen"] : []),
            "--compile-bytecode",
            "--python",
            venvPython,
            ...mirror,
          ]);
        } else if (uv)
          await run(uv, ["pip", "install", "--compile-bytecode", "--python", venvPython, "-r", plan.file, ...mirror]);
        else await run(venvPython, ["-m", "pip", "install", "-r", plan.file, ...mirror]);
      } catch (err) {
        throw new Error(`installing dependencies with ${plan.method} failed: ${(err as Error).message}`);
      }
    }
    // Bytecode compiled now (dependencies above, the plugin's own code here) is what makes a
    // plugin's first start fast; upstream precompiles too (setup_python_environment.go preCompile).
    progress("compiling plugin code");
    await run(join(staging, ".venv", "bin", "python"), ["-m", "compileall", "-q", "-x", "/\\.venv/", "."]).catch(
      () => undefined,
    );
    await mkdir(join(staging, ".venv", "dify"), { recursive: true });
    await writeFile(
      join(staging, MARKER),
      JSON.stringify({ unique_identifier: plugin.uniqueIdentifier, python: python.path }),
    );
    await rm(dir, { recursive: true, force: true });
    await mkdir(dirname(dir), { recursive: true });
    await rename(staging, dir);
    return dir;
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw err;
  }
}

function defaultUv(): string | undefined {
  const cached = join(toolchainCacheDir(), "tools", "bin", "uv");
  return existsSync(cached) ? cached : undefined;
}

/**
 * Runs an installer step in its own process group under the group watcher, with the scrubbed
 * environment plugins get; its output tail becomes the error message when it fails. Silence for
 * PYTHON_ENV_INIT_TIMEOUT or an aborted `signal` stops the whole group.
 */
function runInstaller(
  python: string,
  command: string,
  args: string[],
  cwd: string,
  options: PluginEnvironmentOptions,
  progress: (message: string) => void,
  signal?: AbortSignal,
): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new Error(String(signal.reason ?? "install aborted")));
    const env = scrubbedEnvironment({
      VIRTUAL_ENV: join(cwd, ".venv"),
      UV_CACHE_DIR: join(toolchainCacheDir(), "uv-cache"),
    });
    const child = spawnWatchedGroup(python, command, args, cwd, env);
    let tail = "";
    let idle: NodeJS.Timeout;
    let stoppedBecause: string | undefined;
    const stop = (why: string) => {
      stoppedBecause ??= why;
      signalGroup(child.pid, "SIGKILL");
    };
    const onAbort = () => stop(String(signal?.reason ?? "install aborted"));
    signal?.addEventListener("abort", onAbort, { once: true });
    const arm = () => {
      clearTimeout(idle);
      idle = setTimeout(
        () => stop(`installer printed nothing for ${options.envInitTimeoutSeconds}s and was stopped`),
        options.envInitTimeoutSeconds * 1000,
      );
    };
    const onOutput = (chunk: Buffer) => {
      arm();
      tail = (tail + chunk.toString("utf8")).slice(-4000);
      const last = chunk.toString("utf8").trim().split("\n").pop();
      if (last) progress(last.slice(0, 200));
    };
    const done = () => {
      clearTimeout(idle);
      signal?.removeEventListener("abort", onAbort);
    };
    arm();
    child.stdout.on("data", onOutput);
    child.stderr.on("data", onOutput);
    child.on("error", (err) => {
      done();
      reject(new Error(`failed to run ${command}: ${err.message}`));
    });
    child.on("close", (code) => {
      done();
      if (code === 0 && !stoppedBecause) return resolve();
      const step = `${args.slice(0, 2).join(" ")} exited ${code}`;
      reject(new Error(`${stoppedBecause ? `${stoppedBecause} (${step})` : step}: ${tail.trim()}`));
    });
  });
}
