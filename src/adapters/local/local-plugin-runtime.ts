/**
 * The local daemon's plugin runtime: one virtualenv and one long-lived Python process per
 * plugin unique identifier, shared by all tenants.
 */
import { rm } from "node:fs/promises";
import { memoryLimitBytesOf, runnerOf } from "../../domain/declaration-facts.js";
import type { PluginDeclaration } from "../../domain/manifest.js";
import type { InstallablePlugin, InvokeOptions, PluginRequest, PluginRuntime, SessionOutput } from "../../ports/plugin-runtime.js";
import { buildEnvironment, isEnvironmentReady, pluginDirectory } from "./plugin-environment.js";
import type { PluginConnection } from "./plugin-connection.js";
import { PluginProcess } from "./plugin-process.js";
import { PythonInterpreters } from "./python-interpreters.js";
import { readdirSync, readFileSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { loadDeclaration } from "../../domain/declaration.js";
import { runtimeError } from "../../domain/plugin-protocol.js";

export interface LocalPluginRuntimeOptions {
  workDir: string;
  pythonPath?: string;
  uvPath?: string;
  pipMirrorUrl?: string;
  envInitTimeoutSeconds: number;
}

export class LocalPluginRuntime implements PluginRuntime {
  private readonly interpreters: PythonInterpreters;
  private readonly processes = new Map<string, PluginProcess>();
  private readonly building = new Map<string, Promise<string>>();
  /** Plugins connected over the remote-debugging socket, by their remote identifier. */
  private readonly remotes = new Map<string, PluginConnection>();

  constructor(private readonly options: LocalPluginRuntimeOptions) {
    this.interpreters = new PythonInterpreters(options.pythonPath);
  }

  async install(plugin: InstallablePlugin, progress: (message: string) => void): Promise<void> {
    const uid = plugin.uniqueIdentifier;
    // Two tenants installing the same new plugin at once share one build.
    let build = this.building.get(uid);
    if (!build) {
      build = buildEnvironment(plugin, { ...this.options, interpreters: this.interpreters }, progress).finally(() =>
        this.building.delete(uid),
      );
      this.building.set(uid, build);
    }
    await build;
    progress("starting plugin");
    await this.processFor(uid, plugin.declaration).start();
    progress("plugin is ready");
  }

  /** Routes a remote-debugging plugin's sessions to its socket while it is connected. */
  attachRemote(uniqueIdentifier: string, connection: PluginConnection): void {
    this.remotes.set(uniqueIdentifier, connection);
  }

  detachRemote(uniqueIdentifier: string, connection: PluginConnection): void {
    if (this.remotes.get(uniqueIdentifier) === connection) this.remotes.delete(uniqueIdentifier);
  }

  async isInstalled(uniqueIdentifier: string): Promise<boolean> {
    if (this.remotes.has(uniqueIdentifier)) return true;
    return isEnvironmentReady(pluginDirectory(this.options.workDir, uniqueIdentifier));
  }

  async remove(uniqueIdentifier: string): Promise<void> {
    await this.processes.get(uniqueIdentifier)?.stop();
    this.processes.delete(uniqueIdentifier);
    await rm(pluginDirectory(this.options.workDir, uniqueIdentifier), { recursive: true, force: true });
  }

  async *invoke(uniqueIdentifier: string, request: PluginRequest, options: InvokeOptions): AsyncIterable<SessionOutput> {
    const remote = this.remotes.get(uniqueIdentifier);
    if (remote) {
      yield* remote.invoke(request, options);
      return;
    }
    // A known process means a ready environment; only the first call after a start checks the disk.
    let process = this.processes.get(uniqueIdentifier);
    if (!process) {
      const dir = pluginDirectory(this.options.workDir, uniqueIdentifier);
      if (!isEnvironmentReady(dir)) {
        yield runtimeError("plugin is not installed on this daemon");
        yield { type: "end" };
        return;
      }
      process = this.processFor(uniqueIdentifier, declarationOnDisk(dir));
    }
    yield* process.invoke(request, options);
  }


  /** The pid serving a plugin, if running (for tests and diagnostics). */
  pidOf(uniqueIdentifier: string): number | undefined {
    return this.processes.get(uniqueIdentifier)?.pid;
  }

  async close(): Promise<void> {
    await Promise.all([...this.processes.values()].map((p) => p.stop()));
    this.processes.clear();
  }

  private processFor(uniqueIdentifier: string, declaration: PluginDeclaration): PluginProcess {
    let process = this.processes.get(uniqueIdentifier);
    if (!process) {
      process = new PluginProcess({
        uniqueIdentifier,
        directory: pluginDirectory(this.options.workDir, uniqueIdentifier),
        entrypoint: runnerOf(declaration).entrypoint,
        memoryBytes: memoryLimitBytesOf(declaration),
      });
      this.processes.set(uniqueIdentifier, process);
    }
    return process;
  }
}

/** After a daemon restart the declaration is read back from the unpacked package. */
function declarationOnDisk(dir: string): PluginDeclaration {
  const paths = readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((p) => !p.startsWith(".venv"));
  return loadDeclaration((path) => {
    if (isAbsolute(path) || path.split("/").includes("..")) return undefined;
    try {
      return readFileSync(join(dir, path));
    } catch {
      return undefined;
    }
  }, paths);
}
