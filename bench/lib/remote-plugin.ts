/**
 * Fallback for the Go daemon when its local runtime cannot run a plugin on this machine: the
 * fixture plugin runs as a remote-debugging plugin (INSTALL_METHOD=remote), dialling the Go
 * daemon's debugging TCP port with a key from POST /plugin/{tenant}/debugging/key. Dispatch then
 * goes through the same HTTP API, but there is no install step to time.
 */
import { execFile } from "node:child_process";
import { cpSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { cacheDir, repoRoot } from "./paths.js";
import { type Managed, startProcess } from "./processes.js";

const run = promisify(execFile);

export async function startRemotePlugin(options: {
  workDir: string;
  python: string;
  uv: string;
  host: string;
  port: number;
  key: string;
}): Promise<Managed> {
  const dir = join(options.workDir, "remote-echo-tool");
  mkdirSync(dir, { recursive: true });
  cpSync(join(repoRoot, "test", "fixtures", "plugins", "echo-tool"), dir, {
    recursive: true,
    filter: (src) => !src.includes("__pycache__"),
  });
  const env = { ...process.env, UV_CACHE_DIR: join(cacheDir(), "uv-cache"), VIRTUAL_ENV: join(dir, ".venv") };
  const opts = { cwd: dir, env, timeout: 300_000, maxBuffer: 16 * 1024 * 1024 };
  await run(options.uv, ["venv", "--python", options.python, ".venv"], opts);
  await run(
    options.uv,
    ["pip", "install", "--python", join(dir, ".venv", "bin", "python"), "-r", "requirements.txt"],
    opts,
  );
  return startProcess("remote plugin", join(dir, ".venv", "bin", "python"), ["-m", "main"], {
    cwd: dir,
    env: {
      ...process.env,
      INSTALL_METHOD: "remote",
      REMOTE_INSTALL_HOST: options.host,
      REMOTE_INSTALL_PORT: String(options.port),
      REMOTE_INSTALL_KEY: options.key,
      PYTHONUNBUFFERED: "1",
    },
    logFile: join(options.workDir, "remote-plugin.log"),
  });
}
