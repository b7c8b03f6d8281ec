/**
 * Sessions of plugins that call the daemon back over HTTP (the Lambda runtime): the callback
 * reaches whichever daemon instance API Gateway picks, so the session's identity (tenant, user,
 * plugin, what it was invoked for, and the ids its backwards responses must echo) is kept in the
 * item store for 30 minutes, like upstream keeps sessions in Redis.
 */
import { z } from "zod";
import { uniqueIdentifierSchema } from "../domain/identifier.js";
import type { ItemStore } from "../ports/item-store.js";
import { keys } from "./keys.js";

/** Upstream's session cache lifetime. */
export const SESSION_TTL_SECONDS = 30 * 60;

export const pluginSessionSchema = z.object({
  session_id: z.string(),
  tenant_id: z.string(),
  user_id: z.string(),
  plugin_unique_identifier: uniqueIdentifierSchema,
  /** The access type and action the session runs (e.g. tool / invoke_tool). */
  access_type: z.string(),
  access_action: z.string(),
  conversation_id: z.string().nullable(),
  message_id: z.string().nullable(),
  app_id: z.string().nullable(),
  endpoint_id: z.string().nullable(),
  context: z.record(z.string(), z.unknown()).nullable(),
});

export type PluginSession = z.infer<typeof pluginSessionSchema>;

export class PluginSessions {
  constructor(
    private readonly items: ItemStore,
    private readonly ttlSeconds = SESSION_TTL_SECONDS,
  ) {}

  async register(session: PluginSession): Promise<void> {
    const expiresAt = Math.floor(Date.now() / 1000) + this.ttlSeconds;
    await this.items.write([
      { op: "put", item: { ...keys.pluginSession(session.session_id), expiresAt, data: session } },
    ]);
  }

  async get(sessionId: string): Promise<PluginSession | undefined> {
    const item = await this.items.get(keys.pluginSession(sessionId));
    return item ? pluginSessionSchema.parse(item.data) : undefined;
  }

  async forget(sessionId: string): Promise<void> {
    await this.items.write([{ op: "delete", key: keys.pluginSession(sessionId) }]);
  }
}
