/**
 * `/plugin/{tenant_id}/dispatch/*` (plugin chosen by X-Plugin-ID through the tenant's
 * installation) and `/v2/invoke/dispatch/*` (plugin chosen by X-Plugin-Unique-Identifier).
 */
import { z } from "zod";
import { actionFor } from "../domain/dispatch-actions.js";
import { badRequest, DaemonError } from "../domain/errors.js";
import { isUniqueIdentifier, type PluginUniqueIdentifier } from "../domain/identifier.js";
import { bind, type DaemonRequest, header } from "../http/daemon-request.js";
import { type DaemonResponse, eventStream, json } from "../http/daemon-response.js";
import type { Route } from "../http/router.js";
import type { Dispatcher } from "../services/dispatcher.js";
import type { Installations } from "../stores/installations.js";
import { installedIdentifier } from "./dispatch-target.js";
import { modelPollingRoutes } from "./model-polling.js";

/** The body of every dispatch (exported for the API description). */
export const dispatchBody = z.object({
  user_id: z.string().nullish(),
  tenant_id: z.string().optional(),
  data: z.record(z.string(), z.unknown()),
  conversation_id: z.string().nullish(),
  message_id: z.string().nullish(),
  app_id: z.string().nullish(),
  endpoint_id: z.string().nullish(),
  context: z.record(z.string(), z.unknown()).nullish(),
});

/** gin's NoRoute answer: an unknown path is refused before any header or body is looked at. */
const routeNotFound = () => json({ code: "not_found", message: "route not found" }, 404);

/** Actions upstream serves on `/plugin/{tenant}/dispatch` only (internal/server/http_server.go invokeGroup). */
const notOnV2 = new Set(["model/polling/start", "model/polling/check"]);

export interface DispatchDeps {
  dispatcher: Dispatcher;
  /** Where `/plugin/{tenant}/dispatch` finds the plugin X-Plugin-ID names. */
  installations: Installations;
}

export function dispatchRoutes(deps: DispatchDeps): Route[] {
  const { dispatcher, installations } = deps;
  // Not async: the route handlers that call it are, and its answer is ready when it returns.
  const dispatch = (req: DaemonRequest, tenantId: string, uniqueIdentifier: PluginUniqueIdentifier): DaemonResponse => {
    const action = actionFor(req.params.action ?? "");
    if (!action) return routeNotFound();
    const body = bind(req, dispatchBody);
    return eventStream(
      dispatcher.stream({
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
    ...modelPollingRoutes(deps),
    {
      method: "POST",
      pattern: "/plugin/:tenant_id/dispatch/*action",
      handler: async (req) => {
        if (!actionFor(req.params.action ?? "")) return routeNotFound();
        return dispatch(req, req.params.tenant_id ?? "", await installedIdentifier(installations, req));
      },
    },
    {
      method: "POST",
      pattern: "/v2/invoke/dispatch/*action",
      handler: async (req) => {
        const action = req.params.action ?? "";
        if (!actionFor(action) || notOnV2.has(action)) return routeNotFound();
        const uid = header(req, "x-plugin-unique-identifier");
        if (!uid) throw badRequest("X-Plugin-Unique-Identifier header is required").withStatus(400);
        if (!isUniqueIdentifier(uid))
          throw new DaemonError("PluginUniqueIdentifierError", "invalid plugin unique identifier").withStatus(400);
        const tenantId = bind(req, z.object({ tenant_id: z.string().min(1) }).loose()).tenant_id;
        return dispatch(req, tenantId, uid);
      },
    },
  ];
}
