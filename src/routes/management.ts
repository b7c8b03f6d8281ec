/**
 * `/plugin/{tenant_id}/management/*`: uploads, installs, tasks, listings (upstream internal/server/controllers/plugins.go);
 * `managementGroup` is everything the management handler serves.
 */
import { z } from "zod";
import type { Daemon } from "../daemon.js";
import { badRequest, identifierError, internalError, notFound, pluginNotFound } from "../domain/errors.js";
import { isUniqueIdentifier, parseUniqueIdentifier, pluginIdOf } from "../domain/identifier.js";
import { withoutPlugin } from "../domain/install-task.js";
import { PLUGIN_TAGS } from "../domain/manifest.js";
import { bind, type DaemonRequest, header, pagination } from "../http/daemon-request.js";
import { ok } from "../http/daemon-response.js";
import type { Route } from "../http/router.js";
import {
  Catalog,
  type InstalledPlugin,
  LISTING_LANGUAGES,
  PLUGIN_CATEGORIES,
  type ProviderKind,
} from "../services/catalog.js";
import { assetRoutes } from "./assets.js";
import { autoUpgradeRoutes } from "./auto-upgrade.js";
import { debuggingRoutes } from "./debugging.js";
import { endpointRoutes } from "./endpoints.js";
import { healthRoutes } from "./health.js";
import { uploadedFile } from "./uploaded-file.js";

const M = "/plugin/:tenant_id/management";
const uid = z.string().refine(isUniqueIdentifier, { message: "plugin_unique_identifier is not valid" });
const identifierQuery = z.object({ plugin_unique_identifier: uid });
const page = z.object(pagination());
const categories = PLUGIN_CATEGORIES;
const isCategory = (c: string | undefined): c is (typeof categories)[number] =>
  categories.includes(c as (typeof categories)[number]);
/** Upstream's answer to a category outside the list, after binding (HTTP 200, -400). */
const invalidCategory = () => badRequest("invalid plugin category");

const paged = <T>(items: T[], p: { page: number; page_size: number }) =>
  items.slice((p.page - 1) * p.page_size, p.page * p.page_size);

const tenantOf = (req: DaemonRequest) => req.params.tenant_id ?? "";

/** The management handler's routes: management, endpoint setup, auto-upgrade, assets, health, debugging key. */
export function managementGroup(d: Daemon): Route[] {
  return [
    ...healthRoutes(d),
    ...managementRoutes(d),
    ...endpointRoutes(d.endpoints),
    ...autoUpgradeRoutes(d),
    ...assetRoutes(d),
    ...debuggingRoutes(d),
  ];
}

export function managementRoutes(d: Daemon): Route[] {
  // Upstream has no singular route for models, and answers an unknown provider with
  // PluginNotFoundError (a datasource without installation: the database's "record not found");
  // internal/service/manage_plugin.go GetTool/GetAgentStrategy/GetDatasource, trigger.go GetTrigger.
  const providerRoutes = (plural: string, singular: string | undefined, kind: ProviderKind): Route[] => [
    {
      method: "GET",
      pattern: `${M}/${plural}`,
      handler: async (req) => {
        const p = bind(req, page);
        const rows = (await d.catalog.installed(tenantOf(req)))
          .map((i) => Catalog.providerEntry(i, kind))
          .filter((r) => r !== undefined);
        return ok(paged(rows, p));
      },
    },
    ...(singular === undefined
      ? []
      : [
          {
            method: "GET",
            pattern: `${M}/${singular}`,
            handler: async (req: DaemonRequest) => {
              const q = bind(req, z.object({ plugin_id: z.string().min(1), provider: z.string().min(1) }));
              const plugin = await d.catalog.installedPlugin(tenantOf(req), q.plugin_id);
              const row = plugin && Catalog.providerEntry(plugin, kind);
              if (!row && kind === "datasource") throw internalError("record not found");
              if (!row || row.provider !== q.provider) throw pluginNotFound();
              return ok(row);
            },
          },
        ]),
  ];

  return [
    {
      method: "POST",
      pattern: `${M}/install/upload/package`,
      handler: async (req) => {
        const upload = await uploadedFile(req, "dify_pkg", d.config.packageLimits.maxPackageBytes);
        return ok(await d.intake.accept(upload.file, upload.fields.get("verify_signature") === "true"));
      },
    },
    {
      method: "POST",
      pattern: `${M}/install/upload/bundle`,
      handler: async (req) => {
        const upload = await uploadedFile(req, "dify_bundle", d.config.maxBundleBytes);
        return ok(await d.bundles.accept(upload.file, upload.fields.get("verify_signature") === "true"));
      },
    },
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
          await d.installer.installFromIdentifiers(
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
        const current = await d.installations.get(tenantOf(req), pluginIdOf(original));
        if (current?.installation.plugin_unique_identifier !== original)
          throw notFound("plugin installation not found for this tenant");
        return ok(
          await d.installer.upgrade(
            tenantOf(req),
            body.original_plugin_unique_identifier,
            body.new_plugin_unique_identifier,
            body.source,
            body.meta ?? {},
          ),
        );
      },
    },
    {
      method: "GET",
      pattern: `${M}/install/tasks`,
      handler: async (req) => ok(paged(await d.installer.tasks(tenantOf(req)), bind(req, page))),
    },
    {
      method: "POST",
      pattern: `${M}/install/tasks/delete_all`,
      handler: async (req) => {
        const tenant = tenantOf(req);
        for (const task of await d.tasks.list(tenant)) await d.tasks.delete(tenant, task.id);
        return ok(true);
      },
    },
    {
      method: "GET",
      pattern: `${M}/install/tasks/:task_id`,
      handler: async (req) => {
        const stored = await d.installer.task(tenantOf(req), req.params.task_id ?? "");
        // Upstream wraps the database's "record not found" in an internal error (-500); Dify keys
        // on the message.
        if (!stored) throw internalError("record not found");
        return ok(stored.task);
      },
    },
    {
      method: "POST",
      pattern: `${M}/install/tasks/:task_id/delete`,
      handler: async (req) => {
        await d.tasks.delete(tenantOf(req), req.params.task_id ?? "");
        return ok(true);
      },
    },
    {
      method: "POST",
      pattern: `${M}/install/tasks/:task_id/delete/*identifier`,
      handler: async (req) => {
        const tenant = tenantOf(req);
        // Upstream validates the identifier before looking at the task (HTTP 200, -400).
        const identifier = (req.params.identifier ?? "").replace(/^\/+/, "");
        if (!isUniqueIdentifier(identifier)) throw badRequest(`plugin_unique_identifier is not valid: ${identifier}`);
        const stored = await d.tasks.get(tenant, req.params.task_id ?? "");
        // Upstream treats a task that is already gone as nothing to do.
        if (!stored) return ok(true);
        const rest = withoutPlugin(stored.task, identifier, new Date());
        // ...and deletes the task once every plugin left in it succeeded (install_task_service.go).
        if (!rest || rest.plugins.every((p) => p.status === "success")) await d.tasks.delete(tenant, stored.task.id);
        else await d.tasks.save(stored, rest);
        return ok(true);
      },
    },
    {
      method: "GET",
      pattern: `${M}/decode/from_identifier`,
      handler: async (req) => ok(await d.intake.decodeStored(bind(req, identifierQuery).plugin_unique_identifier)),
    },
    {
      method: "GET",
      pattern: "/v2/invoke/extract",
      handler: async (req) => {
        const raw = header(req, "x-plugin-unique-identifier");
        if (!raw) throw badRequest("X-Plugin-Unique-Identifier header is required").withStatus(400);
        if (!isUniqueIdentifier(raw)) throw identifierError("invalid plugin unique identifier").withStatus(400);
        return ok(await d.intake.decodeStored(raw));
      },
    },
    {
      method: "GET",
      pattern: `${M}/fetch/manifest`,
      handler: async (req) => {
        // On AWS an unknown identifier is fetched from the marketplace here, so Dify does not upload it.
        const record = await d.prefetch.storedOrFetched(bind(req, identifierQuery).plugin_unique_identifier);
        if (!record) throw badRequest("plugin not found");
        return ok(record.declaration);
      },
    },
    {
      method: "GET",
      pattern: `${M}/fetch/identifier`,
      // Upstream's `plugins` table: true once a tenant has the plugin installed, not when only its
      // package is stored (internal/service/decode_service.go FetchPluginFromIdentifier).
      handler: async (req) =>
        ok((await d.packages.users(bind(req, identifierQuery).plugin_unique_identifier)).length > 0),
    },
    {
      method: "GET",
      pattern: `${M}/fetch/readme`,
      handler: async (req) => {
        const q = bind(req, z.object({ plugin_unique_identifier: uid, language: z.string().optional() }));
        const readme = await d.readmes.find(q.plugin_unique_identifier, q.language ?? "en_US");
        if (!readme) throw notFound("no readme content available for this plugin");
        return ok(readme);
      },
    },
    {
      method: "POST",
      pattern: `${M}/uninstall`,
      handler: async (req) => {
        const body = bind(req, z.object({ plugin_installation_id: z.string().min(1) }));
        await d.installer.uninstall(tenantOf(req), body.plugin_installation_id);
        return ok(true);
      },
    },
    {
      method: "GET",
      pattern: `${M}/list`,
      handler: async (req) => {
        const p = bind(req, page);
        const all = (await d.catalog.installed(tenantOf(req))).map(Catalog.listEntry);
        return ok({ list: paged(all, p), total: all.length });
      },
    },
    {
      method: "GET",
      pattern: `${M}/installation/ids`,
      handler: async (req) => {
        // Required upstream; a value outside the list passes binding and is refused by the service.
        const q = bind(req, z.object({ category: z.string().min(1) }));
        const category = q.category;
        if (!isCategory(category)) throw invalidCategory();
        const ids = (await d.catalog.installed(tenantOf(req)))
          .filter((p) => Catalog.providesCategory(p, category))
          .map((p) => p.installation.plugin_id);
        return ok({ plugin_ids: [...new Set(ids)] });
      },
    },
    {
      method: "POST",
      pattern: `${M}/installation/fetch/batch`,
      handler: async (req) => {
        const body = bind(req, z.object({ plugin_ids: z.array(z.string()).max(256) }));
        const found = await Promise.all(body.plugin_ids.map((id) => d.catalog.installedPlugin(tenantOf(req), id)));
        return ok(found.filter((p): p is InstalledPlugin => p !== undefined).map(Catalog.listEntry));
      },
    },
    {
      method: "POST",
      pattern: `${M}/installation/missing`,
      handler: async (req) => {
        const body = bind(req, z.object({ plugin_unique_identifiers: z.array(uid).max(256) }));
        const missing = [];
        for (const raw of body.plugin_unique_identifiers) {
          const id = parseUniqueIdentifier(raw);
          const stored = await d.installations.get(tenantOf(req), id.pluginId);
          const current = stored?.installation.plugin_unique_identifier;
          if (current !== raw) missing.push({ plugin_unique_identifier: raw, current_identifier: current ?? "" });
        }
        return ok(missing);
      },
    },
    {
      method: "GET",
      pattern: `${M}/models/bindings`,
      handler: async (req) => {
        const rows = (await d.catalog.installed(tenantOf(req))).flatMap((p) => {
          const entry = Catalog.providerEntry(p, "model");
          if (!entry) return [];
          return [
            {
              provider: entry.provider,
              installation_id: p.installation.id,
              plugin_id: p.installation.plugin_id,
              plugin_unique_identifier: p.installation.plugin_unique_identifier,
              runtime_type: p.installation.runtime_type,
              source: p.installation.source,
              version: parseUniqueIdentifier(p.installation.plugin_unique_identifier).version,
              verified: p.verified,
            },
          ];
        });
        return ok(rows);
      },
    },
    ...providerRoutes("models", undefined, "model"),
    ...providerRoutes("tools", "tool", "tool"),
    ...providerRoutes("agent_strategies", "agent_strategy", "agent_strategy"),
    ...providerRoutes("datasources", "datasource", "datasource"),
    ...providerRoutes("triggers", "trigger", "trigger"),
    {
      method: "POST",
      pattern: `${M}/tools/check_existence`,
      handler: async (req) => {
        const body = bind(
          req,
          z.object({ provider_ids: z.array(z.object({ plugin_id: z.string(), provider_name: z.string() })) }),
        );
        const result = await Promise.all(
          body.provider_ids.map(async ({ plugin_id, provider_name }) => {
            const plugin = await d.catalog.installedPlugin(tenantOf(req), plugin_id);
            return plugin !== undefined && Catalog.providerEntry(plugin, "tool")?.provider === provider_name;
          }),
        );
        return ok(result);
      },
    },
    {
      method: "GET",
      pattern: `${M}/:category/list`,
      handler: async (req) => {
        const tag = z.enum(PLUGIN_TAGS);
        const q = bind(
          req,
          z.object({
            ...pagination(),
            query: z.string().max(256).optional(),
            tags: z.union([tag, z.array(tag).max(128)]).optional(),
            language: z.enum(LISTING_LANGUAGES).optional(),
          }),
        );
        // Checked after binding, as upstream's service does (HTTP 200, -400).
        const category = req.params.category;
        if (!isCategory(category)) throw invalidCategory();
        const filters = {
          query: q.query,
          tags: q.tags === undefined ? [] : ([] as string[]).concat(q.tags),
          language: q.language,
        };
        const matching = (await d.catalog.installed(tenantOf(req))).filter(
          (p) => Catalog.category(p) === category && Catalog.matchesListFilters(p, filters),
        );
        const list = paged(matching, q).map(Catalog.listEntry);
        return ok({ list, has_more: q.page * q.page_size < matching.length });
      },
    },
  ];
}
