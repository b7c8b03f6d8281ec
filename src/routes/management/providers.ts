/**
 * The providers a tenant's plugins declare, per kind (models, tools, agent strategies,
 * datasources, triggers), and which installation serves each model provider.
 */
import { z } from "zod";
import { internalError, pluginNotFound } from "../../domain/errors.js";
import { bind, type DaemonRequest } from "../../http/daemon-request.js";
import { ok } from "../../http/daemon-response.js";
import type { Route } from "../../http/router.js";
import type { Catalog, ProviderKind } from "../../services/catalog.js";
import { M, page, paged, tenantOf } from "./common.js";

const providerQuery = z.object({ plugin_id: z.string().min(1), provider: z.string().min(1) });

export function providerRoutes(catalog: Catalog): Route[] {
  // Upstream has no singular route for models, and answers an unknown provider with
  // PluginNotFoundError (a datasource without installation: the database's "record not found");
  // internal/service/manage_plugin.go GetTool/GetAgentStrategy/GetDatasource, trigger.go GetTrigger.
  const kindRoutes = (plural: string, singular: string | undefined, kind: ProviderKind): Route[] => [
    {
      method: "GET",
      pattern: `${M}/${plural}`,
      handler: async (req) => {
        const p = bind(req, page);
        return ok(paged(await catalog.providers(tenantOf(req), kind), p));
      },
    },
    ...(singular === undefined
      ? []
      : [
          {
            method: "GET",
            pattern: `${M}/${singular}`,
            handler: async (req: DaemonRequest) => {
              const q = bind(req, providerQuery);
              const row = await catalog.provider(tenantOf(req), q.plugin_id, kind);
              if (!row && kind === "datasource") throw internalError("record not found");
              if (!row || row.provider !== q.provider) throw pluginNotFound();
              return ok(row);
            },
          },
        ]),
  ];

  return [
    {
      method: "GET",
      pattern: `${M}/models/bindings`,
      handler: async (req) => ok(await catalog.modelBindings(tenantOf(req))),
    },
    ...kindRoutes("models", undefined, "model"),
    ...kindRoutes("tools", "tool", "tool"),
    ...kindRoutes("agent_strategies", "agent_strategy", "agent_strategy"),
    ...kindRoutes("datasources", "datasource", "datasource"),
    ...kindRoutes("triggers", "trigger", "trigger"),
    {
      method: "POST",
      pattern: `${M}/tools/check_existence`,
      handler: async (req) => {
        const body = bind(
          req,
          z.object({ provider_ids: z.array(z.object({ plugin_id: z.string(), provider_name: z.string() })) }),
        );
        return ok(await catalog.toolsExist(tenantOf(req), body.provider_ids));
      },
    },
  ];
}
