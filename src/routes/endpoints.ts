/**
 * `/plugin/{tenant_id}/endpoint/*`: endpoint setup and management (upstream internal/server/controllers/endpoint.go, langgenius/dify-plugin-daemon@bdb5642a).
 * Service errors answer HTTP 200 with a negative code, as upstream.
 */
import { z } from "zod";
import { isUniqueIdentifier } from "../domain/identifier.js";
import { bind, type DaemonRequest, pagination } from "../http/daemon-request.js";
import { ok } from "../http/daemon-response.js";
import type { Route } from "../http/router.js";
import type { EndpointManager } from "../services/endpoint-manager.js";

const E = "/plugin/:tenant_id/endpoint";
const settings = z
  .record(z.string(), z.unknown())
  .nullish()
  .transform((s) => s ?? {});
const endpointId = z.object({ endpoint_id: z.string().min(1) });
const page = z.object(pagination(100));

const tenantOf = (req: DaemonRequest) => req.params.tenant_id ?? "";

export function endpointRoutes(endpoints: EndpointManager): Route[] {
  return [
    {
      method: "POST",
      pattern: `${E}/setup`,
      handler: async (req) => {
        const body = bind(
          req,
          z.object({
            plugin_unique_identifier: z
              .string()
              .refine(isUniqueIdentifier, { message: "plugin_unique_identifier is not valid" }),
            user_id: z.string().min(1),
            settings,
            name: z.string().min(1),
          }),
        );
        await endpoints.setup(tenantOf(req), body.user_id, body.plugin_unique_identifier, body.name, body.settings);
        return ok(true);
      },
    },
    {
      method: "POST",
      pattern: `${E}/update`,
      handler: async (req) => {
        const body = bind(
          req,
          z.object({ endpoint_id: z.string().min(1), user_id: z.string().min(1), settings, name: z.string().min(1) }),
        );
        await endpoints.update(tenantOf(req), body.user_id, body.endpoint_id, body.name, body.settings);
        return ok(true);
      },
    },
    {
      method: "POST",
      pattern: `${E}/remove`,
      handler: async (req) => {
        await endpoints.remove(tenantOf(req), bind(req, endpointId).endpoint_id);
        return ok(true);
      },
    },
    {
      method: "POST",
      pattern: `${E}/enable`,
      handler: async (req) => {
        await endpoints.setEnabled(tenantOf(req), bind(req, endpointId).endpoint_id, true);
        return ok(true);
      },
    },
    {
      method: "POST",
      pattern: `${E}/disable`,
      handler: async (req) => {
        await endpoints.setEnabled(tenantOf(req), bind(req, endpointId).endpoint_id, false);
        return ok(true);
      },
    },
    {
      method: "GET",
      pattern: `${E}/list`,
      handler: async (req) => {
        const p = bind(req, page);
        return ok(await endpoints.list(tenantOf(req), p.page, p.page_size));
      },
    },
    {
      method: "GET",
      pattern: `${E}/list/plugin`,
      handler: async (req) => {
        const q = bind(req, z.object({ ...pagination(100), plugin_id: z.string().min(1) }));
        return ok(await endpoints.listForPlugin(tenantOf(req), q.plugin_id, q.page, q.page_size));
      },
    },
  ];
}
