/**
 * A plugin's directory on disk: the unpacked package plus its own virtualenv with the plugin's
 * requirements. Built in a temporary directory and renamed into place, so a failed build
 * leaves nothing half-made behind; a marker file says the environment is complete.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { parseUniqueIdentifier } from "../../domain/identifier.js";
import type { InstallablePlugin } from "../../ports/plugin-runtime.js";
import { toolchainCacheDir, type PythonInterpreters } from "./python-interpreters.js";
import { runnerOf } from "../../domain/declaration-facts.js";

const MARKER = join(".venv", "dify", "plugin.json");

export interface PluginEnvironmentOptions {
  workDir: string;
  interpreters: PythonInterpreters;
  uvPath?: string;
  pipMirrorUrl?: string;
  /** Kill the installer when it prints nothing for this long. */
  envInitTimeoutSeconds: number;
}

export function pluginDirectory(workDir: string, uniqueIdentifier: string): string {
  const id = parseUniqueIdentifier(uniqueIdentifier);
  return join(workDir, id.author ?? "_", `${id.name}-${id.version}@${id.checksum}`);
}

export const isEnvironmentReady = (dir: string): boolean => existsSync(join(dir, MARKER));

export async function buildEnvironment(
  plugin: InstallablePlugin,
  options: PluginEnvironmentOptions,
  progress: (message: string) => void,
): Promise<string> {
  const dir = pluginDirectory(options.workDir, plugin.uniqueIdentifier);
  if (isEnvironmentReady(dir)) return dir;
  const runner = runnerOf(plugin.declaration);
  const python = await options.interpreters.select(runner.version);
  const staging = `${dir}.building-${process.pid}-${Date.now()}`;
  try {
    progress("unpacking plugin");
    for (const entry of plugin.archive.entries) {
      const target = join(staging, entry.name);
      await mkdir(dirname(target), { recursive: true });
      await writeFile(target, entry.data);
    }
    // The SDK scans _assets/ at start and crashes without it.
    await mkdir(join(staging, "_assets"), { recursive: true });
    const uv = options.uvPath ?? defaultUv();
    progress(`creating virtualenv with Python ${python.major}.${python.minor}`);
    if (uv) await runInstaller(uv, ["venv", "--python", python.path, ".venv"], staging, options, progress);
    else await runInstaller(python.path, ["-m", "venv", ".venv"], staging, options, progress);
    const requirements = existsSync(join(staging, "requirements.txt"))
      ? "requirements.txt"
      : existsSync(join(staging, "pyproject.toml"))
        ? "pyproject.toml"
        : undefined;
    if (requirements) {
      progress(`installing dependencies from ${requirements}`);
      const mirror = options.pipMirrorUrl ? ["-i", options.pipMirrorUrl] : [];
      const venvPython = join(staging, ".venv", "bin", "python");
      if (uv) await runInstaller(uv, ["pip", "install", "--python", venvPython, "-r", requirements, ...mirror], staging, options, progress);
      else await runInstaller(venvPython, ["-m", "pip", "install", "-r", requirements, ...mirror], staging, options, progress);
    }
    await mkdir(join(staging, ".venv", "dify"), { recursive: true });
    await writeFile(join(staging, MARKER), JSON.stringify({ unique_identifier: plugin.uniqueIdentifier, python: python.path }));
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

/** Runs an installer step; its output tail becomes the error message when it fails. */
function runInstaller(
  command: string,
  args: string[],
  cwd: string,
  options: PluginEnvironmentOptions,
  progress: (message: string) => void,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd,
      env: { ...process.env, VIRTUAL_ENV: join(cwd, ".venv"), UV_CACHE_DIR: join(toolchainCacheDir(), "uv-cache") },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let tail = "";
    let idle: NodeJS.Timeout;
    const arm = () => {
      clearTimeout(idle);
      idle = setTimeout(() => {
        child.kill("SIGKILL");
        tail += `\ninstaller printed nothing for ${options.envInitTimeoutSeconds}s and was stopped`;
      }, options.envInitTimeoutSeconds * 1000);
    };
    const onOutput = (chunk: Buffer) => {
      arm();
      tail = (tail + chunk.toString("utf8")).slice(-4000);
      const last = chunk.toString("utf8").trim().split("\n").pop();
      if (last) progress(last.slice(0, 200));
    };
    arm();
    child.stdout.on("data", onOutput);
    child.stderr.on("data", onOutput);
    child.on("error", (err) => {
      clearTimeout(idle);
      reject(new Error(`failed to run ${command}: ${err.message}`));
    });
    child.on("close", (code) => {
      clearTimeout(idle);
      if (code === 0) resolve();
      else reject(new Error(`failed to install plugin dependencies (${args.slice(0, 2).join(" ")} exited ${code}): ${tail.trim()}`));
    });
  });
}
