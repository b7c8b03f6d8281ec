/**
 * What the remote-debugging transport needs from the daemon: the tenant of a debugging key, and
 * a connected plugin turned into an installation and back. Implemented by
 * services/remote-plugins.ts; used by adapters/local/remote-debugging-server.ts.
 */
import type { PluginUniqueIdentifier } from "../domain/identifier.js";
import type { PluginDeclaration } from "../domain/manifest.js";

/** A plugin whose declaration is stored, ready to be installed once its sessions reach the socket. */
export interface PreparedRemotePlugin {
  uniqueIdentifier: PluginUniqueIdentifier;
}

export interface Installation {
  tenant_id: string;
  plugin_id: string;
  plugin_unique_identifier: PluginUniqueIdentifier;
}

export interface RemotePluginRegistry {
  tenantOf(key: string): Promise<string | undefined>;
  prepare(
    tenantId: string,
    declaration: PluginDeclaration,
    assets: Array<{ id: string; data: Uint8Array }>,
  ): Promise<PreparedRemotePlugin>;
  install(prepared: PreparedRemotePlugin): Promise<Installation>;
  uninstall(installation: Installation): Promise<void>;
}
