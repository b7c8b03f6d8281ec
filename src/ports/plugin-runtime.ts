/**
 * Runs plugins. One runtime per plugin unique identifier, shared by every tenant that installed it.
 * Adapters: a Python subprocess per plugin (local daemon) and a Python Lambda per plugin (AWS).
 * Both speak the SDK's session protocol (src/domain/plugin-session.ts): a request envelope in,
 * a stream of session messages out.
 */

import type { PluginUniqueIdentifier } from "../domain/identifier.js";
import type { PluginDeclaration } from "../domain/manifest.js";
import type { PackageArchive } from "../domain/package-archive.js";

import type {
  BackwardsInvocationEvent,
  BackwardsInvocationRequest,
  PluginRequest,
  SessionOutput,
} from "../domain/plugin-session.js";

export type {
  BackwardsInvocationEvent,
  BackwardsInvocationRequest,
  PluginErrorData,
  PluginRequest,
  SessionOutput,
} from "../domain/plugin-session.js";

export type BackwardsInvocationHandler = (
  request: BackwardsInvocationRequest,
) => AsyncIterable<BackwardsInvocationEvent>;

/**
 * What a runtime installs from: the identifier and declaration (always at hand, from the package
 * record) and the package itself, read and unpacked only when called. A runtime that runs the
 * files in this process (local) loads it; one that builds from the stored package elsewhere
 * (the Lambda runtime's builder reads it from the bucket) never does, so installing there does
 * not download and unzip the whole package for nothing.
 */
export interface InstallablePlugin {
  uniqueIdentifier: PluginUniqueIdentifier;
  declaration: PluginDeclaration;
  archive: () => Promise<PackageArchive>;
}

export interface InvokeOptions {
  signal: AbortSignal;
  /** The tenant the session runs for (runtimes that call back over HTTP bind their credential to it). */
  tenantId: string;
  /** Answers the plugin's backwards invocations (full-duplex runtimes call it; Lambda plugins call the daemon over HTTP instead). */
  backwards: BackwardsInvocationHandler;
}

export interface PluginRuntime {
  /**
   * Makes the plugin runnable and proves it starts; idempotent. Progress lines become the install
   * task's message. An aborted `signal` (the install timeout) stops the work and rejects; a failed
   * install leaves nothing that `isInstalled` would count.
   */
  install(plugin: InstallablePlugin, progress: (message: string) => void, signal?: AbortSignal): Promise<void>;
  /** Whether `install` completed for this identifier (and the runtime still exists). */
  isInstalled(uniqueIdentifier: PluginUniqueIdentifier): Promise<boolean>;
  /** Frees the runtime once no tenant uses the identifier; removing a missing runtime is not an error. */
  remove(uniqueIdentifier: PluginUniqueIdentifier): Promise<void>;
  /** Runs one session; yields until (and including) `end`. */
  invoke(
    uniqueIdentifier: PluginUniqueIdentifier,
    request: PluginRequest,
    options: InvokeOptions,
  ): AsyncIterable<SessionOutput>;
  /** Clears what a previous process of this daemon left behind when it died (half-built runtimes). */
  recover?(): Promise<void>;
  /** Stops processes / releases resources (local daemon shutdown). */
  close(): Promise<void>;
}
