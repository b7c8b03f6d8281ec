/**
 * Execution environments for functions of the Lambda service emulator (src/aws-local/lambda-service.ts)
 * in tests: each function gets one warm local environment (src/aws-local/execution-environment.ts) running the REAL plugin
 * layer bootstrap, started on its first invocation and reused afterwards, as Lambda keeps an
 * environment warm. `handler` answers the fake's InvokeWithResponseStream.
 *
 * Also builds the Python environment the Dify plugin SDK needs, standing in for the layer's
 * packages: a venv made with uv from the test setup's interpreter and a requirements file.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ExecutionEnvironment } from "../../src/aws-local/execution-environment.js";
import {
  type LambdaFunction as FakeFunction,
  type StreamHandler,
  streamFromRuntime,
} from "../../src/aws-local/lambda-service.js";

/** The plugin layer's exec wrapper, straight from the source tree. */
export const LAYER_BOOTSTRAP = fileURLToPath(new URL("../../layers/plugin-runtime/bootstrap", import.meta.url));

export interface SandboxPoolOptions {
  /** The exec wrapper Lambda starts (/opt/dify-plugin-bootstrap); default: the source tree's. */
  bootstrap?: string;
  /** LAMBDA_TASK_ROOT of a function: one directory for all, or derived from the function (e.g. its code unpacked). */
  taskRoot: string | ((fn: FakeFunction) => Promise<string>);
  /** The managed runtime's interpreter: Lambda starts the exec wrapper with it as the first argument. */
  runtimePython: string;
  /** DIFY_PLUGIN_PYTHON; unset, the bootstrap runs the plugin with its own interpreter, as in Lambda. */
  pluginPython?: string;
  /** Extra environment for every sandbox (after the function's own variables). */
  env?: Record<string, string>;
}

export interface SandboxPool {
  /** Answers InvokeWithResponseStream: the invocation goes to the function's sandbox. */
  handler: StreamHandler;
  /** Sandboxes by function name. */
  running: Map<string, ExecutionEnvironment>;
  /** What every sandbox wrote (CloudWatch, in Lambda), for debugging a failure. */
  output(): string;
  stop(): Promise<void>;
}

export function sandboxes(options: SandboxPoolOptions): SandboxPool {
  const running = new Map<string, ExecutionEnvironment>();
  const starting = new Map<string, Promise<ExecutionEnvironment>>();

  const start = async (fn: FakeFunction): Promise<ExecutionEnvironment> => {
    const taskRoot = typeof options.taskRoot === "string" ? options.taskRoot : await options.taskRoot(fn);
    const sandbox = await ExecutionEnvironment.start({
      command: options.bootstrap ?? LAYER_BOOTSTRAP,
      // Lambda runs the exec wrapper with the managed runtime's command line, interpreter first.
      args: [options.runtimePython, "-m", "awslambdaric", "bootstrap.handler"],
      taskRoot,
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        HOME: process.env.HOME ?? tmpdir(),
        ...fn.configuration.Environment?.Variables,
        AWS_LAMBDA_FUNCTION_NAME: fn.name,
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(fn.configuration.MemorySize),
        ...(options.pluginPython && { DIFY_PLUGIN_PYTHON: options.pluginPython }),
        DIFY_PLUGIN_STARTUP_TIMEOUT: "60",
        // The task root is read-only in Lambda; here it may be a source directory, to be kept clean.
        PYTHONDONTWRITEBYTECODE: "1",
        ...options.env,
      },
    });
    running.set(fn.name, sandbox);
    return sandbox;
  };

  /** One environment per function, even when its first invocations arrive together. */
  const environment = async (fn: FakeFunction): Promise<ExecutionEnvironment> => {
    const warm = running.get(fn.name);
    if (warm?.running) return warm;
    let pending = starting.get(fn.name);
    if (!pending) {
      pending = start(fn).finally(() => starting.delete(fn.name));
      starting.set(fn.name, pending);
    }
    return pending;
  };

  const handler: StreamHandler = async function* (payload, fn) {
    const sandbox = await environment(fn);
    yield* streamFromRuntime(
      sandbox.api.invoke(payload, { timeoutMs: fn.configuration.Timeout * 1000, functionArn: fn.arn }),
    );
  };

  return {
    handler,
    running,
    output: () => [...running.entries()].map(([name, s]) => `--- ${name}\n${s.output}`).join("\n"),
    stop: async () => {
      await Promise.allSettled([...starting.values()]);
      await Promise.all([...running.values()].map((s) => s.stop()));
    },
  };
}

export interface SdkVenv {
  /** The venv's interpreter, with the requirements installed. */
  python: string;
  remove(): void;
}

/**
 * A venv with the plugin SDK: `uv venv --python <python>` then `uv pip install -r <requirements>`
 * (fast with uv's cache). `python` must be >= 3.12, as dify_plugin requires.
 */
export function buildSdkVenv(settings: { uv: string; python: string; requirements: string }): SdkVenv {
  const dir = mkdtempSync(join(tmpdir(), "sdk-venv-"));
  const venv = join(dir, ".venv");
  execFileSync(settings.uv, ["venv", "--python", settings.python, venv], { stdio: "ignore" });
  const python = join(venv, "bin", "python");
  execFileSync(settings.uv, ["pip", "install", "--python", python, "-r", settings.requirements], {
    stdio: "ignore",
    timeout: 300_000,
  });
  return { python, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
