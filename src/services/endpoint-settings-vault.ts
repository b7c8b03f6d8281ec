/**
 * Endpoint settings at rest are encrypted by Dify, not by the daemon: secrets go through Dify's
 * inner API (`invoke/encrypt`, namespace `endpoint`, identity = endpoint id) on every write and
 * read. As upstream, the call is skipped when the settings schema has no secret-input field.
 */
import { hasSecrets, type Settings, type SettingsSchema } from "../domain/endpoint-settings.js";
import type { DifyInnerApi } from "../ports/dify-inner-api.js";

type Operation = "encrypt" | "decrypt" | "clear";

export class EndpointSettingsVault {
  constructor(private readonly inner: DifyInnerApi | undefined) {}

  encrypt(
    tenantId: string,
    userId: string,
    endpointId: string,
    settings: Settings,
    schema: SettingsSchema,
  ): Promise<Settings> {
    return this.run("encrypt", tenantId, userId, endpointId, settings, schema);
  }

  decrypt(
    tenantId: string,
    userId: string,
    endpointId: string,
    settings: Settings,
    schema: SettingsSchema,
  ): Promise<Settings> {
    return this.run("decrypt", tenantId, userId, endpointId, settings, schema);
  }

  /** Drops Dify's cache of the decrypted settings (after an update). */
  async clear(
    tenantId: string,
    userId: string,
    endpointId: string,
    settings: Settings,
    schema: SettingsSchema,
  ): Promise<void> {
    await this.run("clear", tenantId, userId, endpointId, settings, schema);
  }

  private async run(
    opt: Operation,
    tenantId: string,
    userId: string,
    endpointId: string,
    data: Settings,
    schema: SettingsSchema,
  ): Promise<Settings> {
    if (!hasSecrets(schema)) return data;
    if (!this.inner) throw new Error("the Dify inner API is not configured on this daemon (DIFY_INNER_API_URL)");
    const answer = await this.inner.call("invoke/encrypt", {
      tenant_id: tenantId,
      user_id: userId,
      type: "encrypt",
      opt,
      namespace: "endpoint",
      identity: endpointId,
      data,
      config: schema,
    });
    // Dify answers {data: {data: settings}}; the port already unwrapped the outer one.
    const inner = (answer as { data?: unknown }).data;
    return inner && typeof inner === "object" && !Array.isArray(inner) ? (inner as Settings) : {};
  }
}
