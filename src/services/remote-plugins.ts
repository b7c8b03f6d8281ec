/**
 * Remote-debugging plugins as installations. A plugin that dialled the debugging port with its
 * tenant's key becomes, while it stays connected, an installation of runtime type "remote":
 * its declaration is stored as a package record (with no package bytes), the installation is
 * written once the runtime routes its sessions to the socket, and removed when it disconnects.
 * The TCP transport (adapters/local/remote-debugging-server.ts) calls this and nothing else.
 */
import { createHash } from "node:crypto";
import { v4 as uuidv4 } from "uuid";
import { packageBlobKey } from "../domain/blob-keys.js";
import { formatUniqueIdentifier, type PluginUniqueIdentifier } from "../domain/identifier.js";
import type { PluginDeclaration } from "../domain/manifest.js";
import { logger } from "../logger.js";
import type { RemotePluginRegistry } from "../ports/remote-plugins.js";
import type { DebuggingKeys } from "../stores/debugging-keys.js";
import type { Installation, Installations, StoredInstallation } from "../stores/installations.js";
import type { PackageRecords } from "../stores/package-records.js";

export interface RemotePluginsDeps {
  installations: Installations;
  packages: PackageRecords;
  debuggingKeys: DebuggingKeys;
}

/** A declared plugin whose package record is stored, not yet installed. */
export interface PreparedRemotePlugin {
  tenantId: string;
  uniqueIdentifier: PluginUniqueIdentifier;
  pluginId: string;
  existing: StoredInstallation | undefined;
}

export class RemotePlugins implements RemotePluginRegistry {
  constructor(private readonly deps: RemotePluginsDeps) {}

  /** The tenant a debugging key belongs to (undefined for an unknown or expired key). */
  tenantOf(key: string): Promise<string | undefined> {
    return this.deps.debuggingKeys.tenantOf(key);
  }

  /** Stores the connected plugin's declaration and assets under its remote identifier. */
  async prepare(
    tenantId: string,
    declaration: PluginDeclaration,
    assets: Array<{ id: string; data: Uint8Array }>,
  ): Promise<PreparedRemotePlugin> {
    // Upstream's identity for a debugging runtime: the declaration's `author/name:version`, with
    // the checksum of the declaration and the tenant (so two tenants never share one).
    const checksum = createHash("sha256").update(JSON.stringify(declaration)).update(tenantId).digest("hex");
    const uniqueIdentifier = formatUniqueIdentifier({
      author: declaration.author,
      name: declaration.name,
      version: declaration.version,
      checksum,
    });
    const pluginId = `${declaration.author}/${declaration.name}`;
    const existing = await this.deps.installations.get(tenantId, pluginId);
    if (existing && existing.installation.runtime_type !== "remote")
      throw new Error(`plugin ${pluginId} is already installed for this tenant`);
    await this.deps.packages.save(
      {
        unique_identifier: uniqueIdentifier,
        plugin_id: pluginId,
        declaration,
        verified: false,
        verification: null,
        package_key: packageBlobKey(uniqueIdentifier),
        created_at: new Date().toISOString(),
      },
      new Uint8Array(),
      assets,
    );
    return { tenantId, uniqueIdentifier, pluginId, existing };
  }

  /** Installs the prepared plugin for its tenant, once its sessions reach the socket. */
  async install(prepared: PreparedRemotePlugin): Promise<Installation> {
    const { tenantId, uniqueIdentifier, pluginId, existing } = prepared;
    const now = new Date().toISOString();
    const installation: Installation = {
      id: uuidv4(),
      tenant_id: tenantId,
      plugin_id: pluginId,
      plugin_unique_identifier: uniqueIdentifier,
      runtime_type: "remote",
      source: "remote",
      meta: {},
      endpoints_setups: 0,
      endpoints_active: 0,
      created_at: now,
      updated_at: now,
    };
    // A leftover of an earlier debugging connection of the same plugin is replaced.
    if (existing) {
      const replaced = { ...installation, id: existing.installation.id, created_at: existing.installation.created_at };
      await this.deps.installations.replace(existing, replaced);
      return replaced;
    }
    if (!(await this.deps.installations.create(installation)))
      throw new Error(`plugin ${pluginId} is already installed for this tenant`);
    logger.info({ plugin: uniqueIdentifier, tenant: tenantId }, "remote debugging plugin connected");
    return installation;
  }

  /** The plugin disconnected: its installation goes, unless something else replaced it since. */
  async uninstall(installation: Installation): Promise<void> {
    try {
      const current = await this.deps.installations.get(installation.tenant_id, installation.plugin_id);
      if (current?.installation.plugin_unique_identifier === installation.plugin_unique_identifier) {
        await this.deps.installations.remove(current.installation);
      }
    } catch (err) {
      logger.warn(
        { plugin: installation.plugin_unique_identifier, err },
        "removing the remote debugging installation failed",
      );
    }
    logger.info({ plugin: installation.plugin_unique_identifier }, "remote debugging plugin disconnected");
  }
}
