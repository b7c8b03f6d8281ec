/**
 * The local daemon's plugin runtime: one virtualenv and one long-lived Python process per
 * plugin unique identifier, shared by all tenants.
 */

import { readFileSync } from "node:fs";
import { readdir, rm } from "node:fs/promises";
import { isAbsolute, join } from "node:path";
import { loadManifest } from "../../domain/declaration.js";
import { memoryLimitBytesOf, runnerOf } from "../../domain/declaration-facts.js";
import { identifierParts, type PluginUniqueIdentifier } from "../../domain/identifier.js";
import type { PluginDeclaration } from "../../domain/manifest.js";
import { runtimeError } from "../../domain/plugin-protocol.js";
import { logger } from "../../logger.js";
import type {
  InstallablePlugin,
  InvokeOptions,
  PluginRequest,
  PluginRuntime,
  SessionOutput,
} from "../../ports/plugin-runtime.js";
import { deferred, outputsOf } from "../../shared/lazy-iterable.js";
import { Slots } from "../../shared/slots.js";
import type { PluginConnection } from "./plugin-connection.js";
import {
  buildEnvironment,
  environmentIdentifier,
  isEnvironmentReady,
  pluginDirectory,
  STAGING_MARK,
} from "./plugin-environment.js";
import { PluginProcess } from "./plugin-process.js";
import { PythonInterpreters } from "./python-interpreters.js";

export interface LocalPluginRuntimeOptions {
  workDir: string;
  pythonPath?: string;
  uvPath?: string;
  pipMirrorUrl?: string;
  envInitTimeoutSeconds: number;
  /** Plugins run under max(manifest memory, this floor). */
  memoryFloorBytes?: number;
  heartbeatTimeoutMs?: number;
  /** A plugin with no call for this long is stopped until its next call (0: never). */
  idleTimeoutMs?: number;
  /** Plugin ids (author/name) started with the daemon and never stopped for idleness. */
  keepWarm?: readonly string[];
  /** Plugin processes starting at once (default 2); the others wait for a slot. */
  launchingConcurrency?: number;
  /** How long a replaced or removed plugin's in-flight calls may run before it is stopped. */
  drainTimeoutMs?: number;
}

export class LocalPluginRuntime implements PluginRuntime {
  private readonly interpreters: PythonInterpreters;
  private readonly processes = new Map<PluginUniqueIdentifier, PluginProcess>();
  private readonly building = new Map<PluginUniqueIdentifier, Promise<string>>();
  private readonly locks = new Map<PluginUniqueIdentifier, Promise<unknown>>();
  /** Plugins connected over the remote-debugging socket, by their remote identifier. */
  private readonly remotes = new Map<PluginUniqueIdentifier, PluginConnection>();
  private readonly launchSlots: Slots;

  constructor(private readonly options: LocalPluginRuntimeOptions) {
    this.interpreters = new PythonInterpreters(options.pythonPath);
    this.launchSlots = new Slots(options.launchingConcurrency ?? 2);
  }

  async install(plugin: InstallablePlugin, progress: (message: string) => void, signal?: AbortSignal): Promise<void> {
    const uid = plugin.uniqueIdentifier;
    await this.exclusively(uid, async () => {
      // Two tenants installing the same new plugin at once share one build.
      let build = this.building.get(uid);
      if (!build) {
        build = buildEnvironment(
          plugin,
          { ...this.options, interpreters: this.interpreters },
          progress,
          signal,
        ).finally(() => this.building.delete(uid));
        this.building.set(uid, build);
      }
      await build;
      progress("starting plugin");
      try {
        await this.processFor(uid, plugin.declaration).start();
      } catch (err) {
        // A plugin that cannot start is not installed: a retry builds it again from scratch.
        await this.discard(uid);
        throw err;
      }
      progress("plugin is ready");
    });
  }

  /**
   * At daemon start: clears what a daemon that died mid-install left behind (half-built plugin
   * directories; their installer processes ended with it, see child-processes.ts) and starts the
   * plugins kept warm. Every other plugin starts on its first call, so start-up does not grow
   * with the number of installed plugins.
   */
  async recover(): Promise<void> {
    const authors = await readdir(this.options.workDir).catch(() => [] as string[]);
    for (const author of authors) {
      const entries = await readdir(join(this.options.workDir, author)).catch(() => [] as string[]);
      for (const entry of entries.filter((e) => e.includes(STAGING_MARK))) {
        await rm(join(this.options.workDir, author, entry), { recursive: true, force: true });
      }
      if (!this.options.keepWarm?.length) continue;
      for (const entry of entries.filter((e) => !e.includes(STAGING_MARK))) {
        const dir = join(this.options.workDir, author, entry);
        const uid = environmentIdentifier(dir);
        if (!uid || !this.isKeptWarm(uid)) continue;
        this.processFor(uid, manifestOnDisk(dir))
          .start("background")
          .catch((err: Error) => logger.warn({ plugin: uid, err: err.message }, "a plugin kept warm did not start"));
      }
    }
  }

  private isKeptWarm(uniqueIdentifier: PluginUniqueIdentifier): boolean {
    return this.options.keepWarm?.includes(identifierParts(uniqueIdentifier).pluginId) ?? false;
  }

  /** Routes a remote-debugging plugin's sessions to its socket while it is connected. */
  attachRemote(uniqueIdentifier: PluginUniqueIdentifier, connection: PluginConnection): void {
    this.remotes.set(uniqueIdentifier, connection);
  }

  detachRemote(uniqueIdentifier: PluginUniqueIdentifier, connection: PluginConnection): void {
    if (this.remotes.get(uniqueIdentifier) === connection) this.remotes.delete(uniqueIdentifier);
  }

  async isInstalled(uniqueIdentifier: PluginUniqueIdentifier): Promise<boolean> {
    if (this.remotes.has(uniqueIdentifier)) return true;
    return isEnvironmentReady(pluginDirectory(this.options.workDir, uniqueIdentifier));
  }

  /** Drains the plugin's in-flight calls (bounded), stops it and deletes its directory. */
  async remove(uniqueIdentifier: PluginUniqueIdentifier): Promise<void> {
    await this.exclusively(uniqueIdentifier, () =>
      this.discard(uniqueIdentifier, this.options.drainTimeoutMs ?? 60_000),
    );
  }

  private async discard(uniqueIdentifier: PluginUniqueIdentifier, drainMs = 0): Promise<void> {
    const process = this.processes.get(uniqueIdentifier);
    this.processes.delete(uniqueIdentifier);
    await process?.stop(drainMs);
    await rm(pluginDirectory(this.options.workDir, uniqueIdentifier), { recursive: true, force: true });
  }

  /** Install and remove of one identifier run one at a time, so a removal never deletes a build in progress. */
  private async exclusively<T>(uniqueIdentifier: PluginUniqueIdentifier, work: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(uniqueIdentifier) ?? Promise.resolve();
    const mine = previous.catch(() => undefined).then(work);
    const settled = mine.catch(() => undefined);
    this.locks.set(uniqueIdentifier, settled);
    void settled.then(() => {
      if (this.locks.get(uniqueIdentifier) === settled) this.locks.delete(uniqueIdentifier);
    });
    return mine;
  }

  invoke(
    uniqueIdentifier: PluginUniqueIdentifier,
    request: PluginRequest,
    options: InvokeOptions,
  ): AsyncIterable<SessionOutput> {
    // Opened at the first read, as before; the outputs then come straight from the plugin's connection.
    return deferred(() => {
      const remote = this.remotes.get(uniqueIdentifier);
      if (remote) return remote.invoke(request, options);
      // A known process means a ready environment; only the first call after a start checks the disk.
      let process = this.processes.get(uniqueIdentifier);
      if (!process) {
        const dir = pluginDirectory(this.options.workDir, uniqueIdentifier);
        if (!isEnvironmentReady(dir)) {
          return outputsOf(runtimeError("plugin is not installed on this daemon"), { type: "end" });
        }
        process = this.processFor(uniqueIdentifier, manifestOnDisk(dir));
      }
      return process.invoke(request, options);
    });
  }

  /** The pid serving a plugin, if running (for tests and diagnostics). */
  pidOf(uniqueIdentifier: PluginUniqueIdentifier): number | undefined {
    return this.processes.get(uniqueIdentifier)?.pid;
  }

  /** Each known plugin's supervisor state ("running", "restarting", "crash-loop", …). */
  states(): Record<string, string> {
    return Object.fromEntries([...this.processes].map(([uid, p]) => [uid, p.state]));
  }

  async close(): Promise<void> {
    await Promise.all([...this.processes.values()].map((p) => p.stop()));
    this.processes.clear();
  }

  private processFor(
    uniqueIdentifier: PluginUniqueIdentifier,
    declaration: Pick<PluginDeclaration, "meta" | "resource">,
  ): PluginProcess {
    let process = this.processes.get(uniqueIdentifier);
    if (!process) {
      process = new PluginProcess({
        uniqueIdentifier,
        directory: pluginDirectory(this.options.workDir, uniqueIdentifier),
        entrypoint: runnerOf(declaration).entrypoint,
        memoryBytes: memoryLimitBytesOf(declaration, this.options.memoryFloorBytes),
        heartbeatTimeoutMs: this.options.heartbeatTimeoutMs,
        idleTimeoutMs: this.isKeptWarm(uniqueIdentifier) ? 0 : this.options.idleTimeoutMs,
        launchSlots: this.launchSlots,
      });
      this.processes.set(uniqueIdentifier, process);
    }
    return process;
  }
}

/**
 * After a daemon restart, what starting the plugin needs is read back from its manifest alone:
 * neither a walk of the directory (its virtualenv holds thousands of files) nor its provider
 * files, so starting a plugin costs the same however large it is and however many are installed.
 */
function manifestOnDisk(dir: string): Pick<PluginDeclaration, "meta" | "resource"> {
  return loadManifest((path) => {
    if (isAbsolute(path) || path.split("/").includes("..")) return undefined;
    try {
      return readFileSync(join(dir, path));
    } catch {
      return undefined;
    }
  });
}
