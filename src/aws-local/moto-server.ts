/**
 * An AWS-compatible endpoint on this machine: moto in server mode on a loopback port, for the
 * test suite and for `npm run start:aws-local` (S3, DynamoDB and Secrets Manager answer there).
 * Installs moto on first use (scripts/aws-emulator.sh) and sets nothing globally: the caller
 * decides how clients learn the endpoint.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

export interface AwsEmulator {
  /** e.g. http://127.0.0.1:41234 — S3, DynamoDB and Secrets Manager all answer here. */
  endpoint: string;
  stop(): Promise<void>;
}

const INSTALL_SCRIPT = fileURLToPath(new URL("../../scripts/aws-emulator.sh", import.meta.url));
const READY_TIMEOUT_MS = 30_000;
const START_ATTEMPTS = 3;

export interface AwsEmulatorOptions {
  /** A fixed port; by default a free one. */
  port?: number;
}

export async function startAwsEmulator(options: AwsEmulatorOptions = {}): Promise<AwsEmulator> {
  const server = await installMoto();
  if (options.port !== undefined) return launch(server, options.port);
  let lastError: unknown;
  // The free port is found before moto binds it, so another process may take it in between.
  for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
    try {
      return await launch(server, await freePort());
    } catch (err) {
      lastError = err;
    }
  }
  throw lastError;
}

async function installMoto(): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)("bash", [INSTALL_SCRIPT], { maxBuffer: 16 * 1024 * 1024 });
    const server = stdout.trim().split("\n").pop();
    if (!server) throw new Error("the install script printed no moto_server path");
    return server;
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? "";
    throw new Error(`could not install moto: ${(err as Error).message}\n${stderr}`);
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.unref();
    probe.on("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });
}

async function launch(server: string, port: number): Promise<AwsEmulator> {
  const endpoint = `http://127.0.0.1:${port}`;
  const child = spawn(server, ["-H", "127.0.0.1", "-p", String(port)], { stdio: ["ignore", "ignore", "pipe"] });
  // moto logs every request to stderr; keep the tail for error messages and keep the pipe drained.
  let log = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    log = (log + chunk).slice(-8_000);
  });
  let running = true;
  const exited = new Promise<void>((resolve) => {
    const done = () => {
      running = false;
      resolve();
    };
    child.once("exit", done);
    // A spawn failure (e.g. a broken venv) emits "error" and possibly no "exit".
    child.once("error", (err) => {
      log += `\n${err.message}`;
      done();
    });
  });
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);

  const stop = async () => {
    process.off("exit", killOnExit);
    if (running) await terminate(child, exited);
  };

  try {
    await waitUntilAnswering(
      endpoint,
      () => running,
      () => log,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { endpoint, stop };
}

async function waitUntilAnswering(endpoint: string, running: () => boolean, log: () => string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (!running()) throw new Error(`moto_server exited before answering:\n${log()}`);
    try {
      const response = await fetch(`${endpoint}/moto-api/`, { signal: AbortSignal.timeout(1_000) });
      await response.arrayBuffer();
      if (response.ok) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`moto_server did not answer on ${endpoint} within ${READY_TIMEOUT_MS} ms:\n${log()}`);
}

async function terminate(child: ChildProcess, exited: Promise<void>): Promise<void> {
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(timer);
}
