/** Installing, upgrading and uninstalling a tenant's plugins; the work itself runs as install tasks. */
import { z } from "zod";
import { badRequest, notFound } from "../../domain/errors.js";
import { pluginIdOf } from "../../domain/identifier.js";
import { bind } from "../../http/daemon-request.js";
import { ok } from "../../http/daemon-response.js";
import type { Route } from "../../http/router.js";
import type { Catalog } from "../../services/catalog.js";
import type { Installer } from "../../services/installer.js";
import { M, tenantOf, uid } from "./common.js";

export interface InstallRouteDeps {
  installer: Installer;
  catalog: Catalog;
}

export function installRoutes({ installer, catalog }: InstallRouteDeps): Route[] {
  return [
    {
      method: "POST",
      pattern: `${M}/install/identifiers`,
      handler: async (req) => {
        const body = bind(
          req,
          z.object({
            plugin_unique_identifiers: z.array(uid).min(1).max(64),
            source: z.string().min(1),
            metas: z.array(z.record(z.string(), z.unknown())).optional(),
          }),
        );
        if (body.metas && body.metas.length !== body.plugin_unique_identifiers.length) {
          throw badRequest("the number of metas must be equal to the number of plugin unique identifiers");
        }
        return ok(
          await installer.installFromIdentifiers(
            tenantOf(req),
            body.plugin_unique_identifiers,
            body.source,
            body.metas ?? [],
          ),
        );
      },
    },
    {
      method: "POST",
      pattern: `${M}/install/upgrade`,
      handler: async (req) => {
        const body = bind(
          req,
          z.object({
            original_plugin_unique_identifier: uid,
            new_plugin_unique_identifier: uid,
            source: z.string().min(1),
            meta: z.record(z.string(), z.unknown()).nullish(),
          }),
        );
        // Upstream's checks, in its order and words (controllers/plugins.go, service/install_plugin.go UpgradePlugin).
        const original = body.original_plugin_unique_identifier;
        const next = body.new_plugin_unique_identifier;
        if (original === next) throw badRequest("original and new plugin unique identifier are the same");
        if (pluginIdOf(original) !== pluginIdOf(next)) throw badRequest("original and new plugin id are different");
        if ((await catalog.currentIdentifier(tenantOf(req), pluginIdOf(original))) !== original)
          throw notFound("plugin installation not found for this tenant");
        return ok(await installer.upgrade(tenantOf(req), original, next, body.source, body.meta ?? {}));
      },
    },
    {
      method: "POST",
      pattern: `${M}/uninstall`,
      handler: async (req) => {
        const body = bind(req, z.object({ plugin_installation_id: z.string().min(1) }));
        await installer.uninstall(tenantOf(req), body.plugin_installation_id);
        return ok(true);
      },
    },
  ];
}
