/**
 * `POST /plugin/{tenant_id}/dispatch/model/polling/start` and `/check`: Dify's path for
 * long-running LLM calls. Upstream answers ONE plain JSON envelope, not a stream: success HTTP
 * 200, a failed session HTTP 500 (internal/service/model_polling.go, controllers/base.go
 * BindPluginDispatchRequest, langgenius/dify-plugin-daemon@bdb5642a). `/v2/invoke/dispatch`
 * has no polling routes upstream.
 */
import { z } from "zod";
import { actionFor } from "../domain/dispatch-actions.js";
import { bind } from "../http/daemon-request.js";
import { ok } from "../http/daemon-response.js";
import type { Route } from "../http/router.js";
import { pollOnce } from "../services/model-polling.js";
import type { DispatchDeps } from "./dispatch.js";
import { installedIdentifier } from "./dispatch-target.js";

/** What upstream's request types require before any plugin runs (RequestStartPolling, RequestCheckPolling). */
const model = { provider: z.string().min(1), model: z.string().min(1), model_type: z.literal("llm") };
const startData = z.looseObject(model);
const checkData = z.looseObject({
  ...model,
  plugin_state: z
    .record(z.string(), z.unknown())
    .refine((s) => Object.keys(s).length > 0, { message: "must not be empty" }),
});

const pollingBody = (data: z.ZodType<Record<string, unknown>>) =>
  z.object({
    user_id: z.string().nullish(),
    data,
    conversation_id: z.string().nullish(),
    message_id: z.string().nullish(),
    app_id: z.string().nullish(),
    endpoint_id: z.string().nullish(),
    context: z.record(z.string(), z.unknown()).nullish(),
  });

export function modelPollingRoutes({ dispatcher, installations }: DispatchDeps): Route[] {
  const route = (
    path: "model/polling/start" | "model/polling/check",
    data: z.ZodType<Record<string, unknown>>,
  ): Route => ({
    method: "POST",
    pattern: `/plugin/:tenant_id/dispatch/${path}`,
    handler: async (req) => {
      const uniqueIdentifier = await installedIdentifier(installations, req);
      const body = bind(req, pollingBody(data));
      const result = await pollOnce(dispatcher, {
        tenantId: req.params.tenant_id ?? "",
        uniqueIdentifier,
        action: actionFor(path)!,
        userId: body.user_id ?? "",
        data: body.data,
        conversationId: body.conversation_id,
        messageId: body.message_id,
        appId: body.app_id,
        endpointId: body.endpoint_id,
        context: body.context,
      });
      return ok(result);
    },
  });
  return [route("model/polling/start", startData), route("model/polling/check", checkData)];
}
