/**
 * `/plugin/{tenant_id}/dispatch/*` (plugin chosen by X-Plugin-ID through the tenant's
 * installation) and `/v2/invoke/dispatch/*` (plugin chosen by X-Plugin-Unique-Identifier).
 */
import { z } from "zod";
import { actionFor } from "../domain/dispatch-actions.js";
import { badRequest, DaemonError, pluginNotFound } from "../domain/errors.js";
import { isUniqueIdentifier } from "../domain/identifier.js";
import { bind, header, type DaemonRequest } from "../http/daemon-request.js";
import { eventStream, json } from "../http/daemon-response.js";
import type { Route } from "../http/router.js";
import type { Daemon } from "../daemon.js";

const dispatchBody = z.object({
  user_id: z.string().nullish(),
  tenant_id: z.string().optional(),
  data: z.record(z.string(), z.unknown()),
  conversation_id: z.string().nullish(),
  message_id: z.string().nullish(),
  app_id: z.string().nullish(),
  endpoint_id: z.string().nullish(),
  context: z.record(z.string(), z.unknown()).nullish(),
});

export function dispatchRoutes(d: Daemon): Route[] {
  const dispatch = async (req: DaemonRequest, tenantId: string, uniqueIdentifier: string) => {
    const action = actionFor(req.params.action ?? "");
    if (!action) return json({ code: "not_found", message: "route not found" }, 404);
    const body = bind(req, dispatchBody);
    return eventStream(
      d.dispatcher.stream({
        tenantId,
        uniqueIdentifier,
        action,
        userId: body.user_id ?? "",
        data: body.data,
        conversationId: body.conversation_id,
        messageId: body.message_id,
        appId: body.app_id,
        endpointId: body.endpoint_id,
        context: body.context,
      }),
    );
  };

  return [
    {
      method: "POST",
      pattern: "/plugin/:tenant_id/dispatch/*action",
      handler: async (req) => {
        const pluginId = header(req, "x-plugin-id");
        if (!pluginId) throw badRequest("plugin_id is required").withStatus(400);
        const tenantId = req.params.tenant_id ?? "";
        const stored = await d.installations.get(tenantId, pluginId);
        if (!stored) throw pluginNotFound().withStatus(404);
        if (!isUniqueIdentifier(stored.installation.plugin_unique_identifier)) {
          throw new DaemonError("PluginUniqueIdentifierError", "invalid plugin unique identifier").withStatus(400);
        }
        return dispatch(req, tenantId, stored.installation.plugin_unique_identifier);
      },
    },
    {
      method: "POST",
      pattern: "/v2/invoke/dispatch/*action",
      handler: async (req) => {
        const uid = header(req, "x-plugin-unique-identifier");
        if (!uid) throw badRequest("X-Plugin-Unique-Identifier header is required").withStatus(400);
        if (!isUniqueIdentifier(uid)) throw new DaemonError("PluginUniqueIdentifierError", "invalid plugin unique identifier").withStatus(400);
        const tenantId = bind(req, z.object({ tenant_id: z.string().min(1) }).loose()).tenant_id;
        return dispatch(req, tenantId, uid);
      },
    },
  ];
}
