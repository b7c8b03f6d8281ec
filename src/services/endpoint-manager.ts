/**
 * Endpoint management (`/plugin/{tenant}/endpoint/*`), with upstream's checks and messages
 * (internal/service/setup_endpoint.go, endpoint.go): the exact installed identifier, the
 * manifest's endpoint permission, settings validated against the declaration, settings
 * encrypted through Dify, secrets masked in listings and kept when the UI sends them back masked.
 */
import { randomInt } from "node:crypto";
import { v7 as uuidv7 } from "uuid";
import { permissionsOf } from "../domain/declaration-facts.js";
import { maskSettings, mergeMaskedSecrets, type Settings, settingsProblem } from "../domain/endpoint-settings.js";
import { badRequest, internalError, notFound, permissionDenied, pluginNotFound } from "../domain/errors.js";
import { identifierParts, type PluginUniqueIdentifier } from "../domain/identifier.js";
import type { EndpointProviderDeclaration } from "../domain/manifest.js";
import type { Endpoint, Endpoints } from "../stores/endpoints.js";
import type { Installations } from "../stores/installations.js";
import type { PackageRecords } from "../stores/package-records.js";
import type { EndpointSettingsVault } from "./endpoint-settings-vault.js";

/** An endpoint as Dify lists it: decrypted, secrets masked, with the endpoint declaration. */
export type ListedEndpoint = Endpoint & { declaration: EndpointProviderDeclaration };

const EMPTY_DECLARATION = { settings: [], endpoints: [] } as unknown as EndpointProviderDeclaration;
/** Upstream's fixed expiry for endpoints. */
const EXPIRED_AT = "2050-01-01T00:00:00Z";
const HOOK_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";

const reason = (err: unknown) => (err instanceof Error ? err.message : String(err));

export class EndpointManager {
  constructor(
    private readonly endpoints: Endpoints,
    private readonly installations: Installations,
    private readonly packages: PackageRecords,
    private readonly vault: EndpointSettingsVault,
  ) {}

  async setup(
    tenantId: string,
    userId: string,
    uniqueIdentifier: PluginUniqueIdentifier,
    name: string,
    settings: Settings,
  ): Promise<void> {
    const pluginId = identifierParts(uniqueIdentifier).pluginId;
    const stored = await this.installations.get(tenantId, pluginId);
    if (!stored || stored.installation.plugin_unique_identifier !== uniqueIdentifier) throw pluginNotFound();
    const declaration = (await this.packages.get(uniqueIdentifier))?.declaration;
    if (!declaration) throw pluginNotFound();
    if (!permissionsOf(declaration).endpoint.enabled) {
      throw permissionDenied("permission denied, you need to enable endpoint access in plugin manifest");
    }
    const schema = declaration.endpoint?.settings;
    if (!schema) throw badRequest("plugin does not have an endpoint");
    const problem = settingsProblem(settings, schema);
    if (problem) throw badRequest(`failed to validate settings: ${problem}`);

    // The id is chosen first so the settings are encrypted for it before anything is stored.
    const id = uuidv7();
    let encrypted: Settings;
    try {
      encrypted = await this.vault.encrypt(tenantId, userId, id, settings, schema);
    } catch (err) {
      throw internalError(`failed to encrypt settings: ${reason(err)}`);
    }
    const now = new Date().toISOString();
    const created = await this.endpoints.create({
      id,
      created_at: now,
      updated_at: now,
      name,
      hook_id: hookId(),
      tenant_id: tenantId,
      user_id: userId,
      plugin_id: pluginId,
      expired_at: EXPIRED_AT,
      enabled: true,
      settings: encrypted,
    });
    if (!created) throw pluginNotFound();
  }

  async update(tenantId: string, userId: string, endpointId: string, name: string, settings: Settings): Promise<void> {
    const current = await this.endpoints.get(tenantId, endpointId);
    if (!current) throw notFound("failed to find endpoint: record not found");
    const stored = await this.installations.get(tenantId, current.endpoint.plugin_id);
    if (!stored) throw notFound("failed to find plugin installation: record not found");
    const declaration = (await this.packages.get(stored.installation.plugin_unique_identifier))?.declaration;
    if (!declaration) throw pluginNotFound();
    const schema = declaration.endpoint?.settings;
    if (!schema) throw badRequest("plugin does not have an endpoint");

    let original: Settings;
    try {
      original = await this.vault.decrypt(tenantId, userId, endpointId, current.endpoint.settings, schema);
    } catch (err) {
      throw internalError(`failed to decrypt settings: ${reason(err)}`);
    }
    const merged = mergeMaskedSecrets(settings, original, schema);
    const problem = settingsProblem(merged, schema);
    if (problem) throw badRequest(`failed to validate settings: ${problem}`);
    let encrypted: Settings;
    try {
      encrypted = await this.vault.encrypt(tenantId, userId, endpointId, merged, schema);
    } catch (err) {
      throw internalError(`failed to encrypt settings: ${reason(err)}`);
    }
    await this.endpoints.update(current, name, encrypted);
    try {
      await this.vault.clear(tenantId, userId, endpointId, merged, schema);
    } catch (err) {
      throw internalError(`failed to clear credentials cache: ${reason(err)}`);
    }
  }

  /** Dify treats this "record not found" error as a successful delete, so removing twice is fine. */
  async remove(tenantId: string, endpointId: string): Promise<void> {
    const removed = await this.endpoints.remove(tenantId, endpointId);
    if (!removed) throw internalError("failed to remove endpoint: record not found");
  }

  async setEnabled(tenantId: string, endpointId: string, enabled: boolean): Promise<void> {
    const endpoint = await this.endpoints.setEnabled(tenantId, endpointId, enabled);
    if (!endpoint) throw notFound("endpoint not found");
  }

  async list(tenantId: string, page: number, pageSize: number): Promise<ListedEndpoint[]> {
    const all = await this.endpoints.list(tenantId);
    return Promise.all(pageOf(all, page, pageSize).map((e) => this.present(e, false)));
  }

  async listForPlugin(tenantId: string, pluginId: string, page: number, pageSize: number): Promise<ListedEndpoint[]> {
    const all = (await this.endpoints.list(tenantId)).filter((e) => e.plugin_id === pluginId);
    return Promise.all(pageOf(all, page, pageSize).map((e) => this.present(e, true)));
  }

  private async present(endpoint: Endpoint, installationRequired: boolean): Promise<ListedEndpoint> {
    const stored = await this.installations.get(endpoint.tenant_id, endpoint.plugin_id);
    if (!stored) {
      if (installationRequired) throw notFound("failed to find plugin installation: record not found");
      // Upstream lists endpoints of uninstalled plugins with empty settings and declaration.
      return { ...endpoint, settings: {}, declaration: EMPTY_DECLARATION };
    }
    const declaration = (await this.packages.get(stored.installation.plugin_unique_identifier))?.declaration;
    if (!declaration) throw internalError("failed to get plugin declaration: plugin not found");
    if (!declaration.endpoint) throw notFound("plugin does not have an endpoint");
    const schema = declaration.endpoint.settings;
    let settings: Settings;
    try {
      settings = await this.vault.decrypt(endpoint.tenant_id, "", endpoint.id, endpoint.settings, schema);
    } catch (err) {
      throw internalError(`failed to decrypt settings: ${reason(err)}`);
    }
    return { ...endpoint, settings: maskSettings(settings, schema), declaration: declaration.endpoint };
  }
}

const pageOf = <T>(items: T[], page: number, size: number) => items.slice((page - 1) * size, page * size);

/** 16 lowercase letters and digits, like upstream's hook ids (but from a cryptographic source). */
function hookId(): string {
  let id = "";
  for (let i = 0; i < 16; i++) id += HOOK_ALPHABET[randomInt(HOOK_ALPHABET.length)];
  return id;
}
