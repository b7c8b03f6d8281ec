/**
 * `/plugin/{tenant_id}/management/*`: uploads, installs, tasks, listings (daemon-api.md §2.1);
 * `managementGroup` is everything the management handler serves.
 */
import { z } from "zod";
import { badRequest, identifierError, internalError, notFound } from "../domain/errors.js";
import { withoutPlugin } from "../domain/install-task.js";
import { isUniqueIdentifier, parseUniqueIdentifier } from "../domain/identifier.js";
import { bind, header, pagination, type DaemonRequest } from "../http/daemon-request.js";
import { ok } from "../http/daemon-response.js";
import { parseMultipart } from "../http/multipart.js";
import type { Route } from "../http/router.js";
import { storedOrFetched } from "../adapters/aws/marketplace-prefetch.js";
import { Catalog, type InstalledPlugin, type ProviderKind } from "../services/catalog.js";
import type { Daemon } from "../daemon.js";
import { assetRoutes } from "./assets.js";
import { autoUpgradeRoutes } from "./auto-upgrade.js";
import { debuggingRoutes } from "./debugging.js";
import { endpointRoutes } from "./endpoints.js";
import { healthRoutes } from "./health.js";

const M = "/plugin/:tenant_id/management";
const uid = z.string().refine(isUniqueIdentifier, { message: "plugin_unique_identifier is not valid" });
const identifierQuery = z.object({ plugin_unique_identifier: uid });
const page = z.object(pagination());
const categories = ["tool", "model", "extension", "agent-strategy", "datasource", "trigger"] as const;

const paged = <T>(items: T[], p: { page: number; page_size: number }) =>
  items.slice((p.page - 1) * p.page_size, p.page * p.page_size);

const tenantOf = (req: DaemonRequest) => req.params.tenant_id ?? "";

/** The management handler's routes: management, endpoint setup, auto-upgrade, assets, health, debugging key. */
export function managementGroup(d: Daemon): Route[] {
  return [...healthRoutes(d), ...managementRoutes(d), ...endpointRoutes(d.endpoints), ...autoUpgradeRoutes(d), ...assetRoutes(d), ...debuggingRoutes(d)];
}

export function managementRoutes(d: Daemon): Route[] {
  const providerRoutes = (plural: string, singular: string, kind: ProviderKind): Route[] => [
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
    {
      method: "GET",
      pattern: `${M}/${singular}`,
      handler: async (req) => {
        const q = bind(req, z.object({ plugin_id: z.string().min(1), provider: z.string().min(1) }));
        const plugin = await d.catalog.installedPlugin(tenantOf(req), q.plugin_id);
        const row = plugin && Catalog.providerEntry(plugin, kind);
        if (!row || row.provider !== q.provider) throw badRequest(`${singular.replace("_", " ")} not found`);
        return ok(row);
      },
    },
  ];

  return [
    {
      method: "POST",
      pattern: `${M}/install/upload/package`,
      handler: async (req) => {
        const form = await parseMultipart(req, d.config.packageLimits.maxPackageBytes);
        const file = form.files.get("dify_pkg");
        if (!file) throw badRequest("dify_pkg is required").withStatus(400);
        return ok(await d.intake.accept(file, form.fields.get("verify_signature") === "true"));
      },
    },
    {
      method: "POST",
      pattern: `${M}/install/upload/bundle`,
      handler: async (req) => {
        const form = await parseMultipart(req, d.config.maxBundleBytes);
        const file = form.files.get("dify_bundle");
        if (!file) throw badRequest("dify_bundle is required").withStatus(400);
        return ok(await d.bundles.accept(file, form.fields.get("verify_signature") === "true"));
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
          throw badRequest("the length of metas must equal the length of plugin_unique_identifiers");
        }
        return ok(await d.installer.installFromIdentifiers(tenantOf(req), body.plugin_unique_identifiers, body.source, body.metas ?? []));
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
        return ok(
          await d.installer.upgrade(tenantOf(req), body.original_plugin_unique_identifier, body.new_plugin_unique_identifier, body.source, body.meta ?? {}),
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
        const stored = await d.tasks.get(tenant, req.params.task_id ?? "");
        // Upstream treats a task that is already gone as nothing to do.
        if (!stored) return ok(true);
        const rest = withoutPlugin(stored.task, (req.params.identifier ?? "").replace(/^\//, ""), new Date());
        if (!rest) await d.tasks.delete(tenant, stored.task.id);
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
        const record = await storedOrFetched(d, bind(req, identifierQuery).plugin_unique_identifier);
        if (!record) throw badRequest("plugin not found");
        return ok(record.declaration);
      },
    },
    {
      method: "GET",
      pattern: `${M}/fetch/identifier`,
      handler: async (req) => ok((await d.packages.get(bind(req, identifierQuery).plugin_unique_identifier)) !== undefined),
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
        const q = bind(req, z.object({ category: z.enum(categories).optional() }));
        const ids = (await d.catalog.installed(tenantOf(req)))
          .filter((p) => !q.category || Catalog.category(p) === q.category)
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
    ...providerRoutes("models", "model", "model"),
    ...providerRoutes("tools", "tool", "tool"),
    ...providerRoutes("agent_strategies", "agent_strategy", "agent_strategy"),
    ...providerRoutes("datasources", "datasource", "datasource"),
    ...providerRoutes("triggers", "trigger", "trigger"),
    {
      method: "POST",
      pattern: `${M}/tools/check_existence`,
      handler: async (req) => {
        const body = bind(req, z.object({ provider_ids: z.array(z.object({ plugin_id: z.string(), provider_name: z.string() })) }));
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
        const category = req.params.category;
        if (!categories.includes(category as (typeof categories)[number])) throw badRequest(`unknown category ${category}`).withStatus(400);
        const q = bind(
          req,
          z.object({
            ...pagination(),
            query: z.string().max(256).optional(),
            tags: z.union([z.string(), z.array(z.string())]).optional(),
          }),
        );
        const tags = q.tags === undefined ? [] : ([] as string[]).concat(q.tags);
        const needle = q.query?.toLowerCase();
        const matching = (await d.catalog.installed(tenantOf(req))).filter((p) => {
          if (Catalog.category(p) !== category) return false;
          if (tags.length && !tags.some((t) => (p.declaration.tags ?? []).some((tag) => tag === t))) return false;
          if (!needle) return true;
          const text = JSON.stringify([p.installation.plugin_id, p.declaration.name, p.declaration.label, p.declaration.description]);
          return text.toLowerCase().includes(needle);
        });
        const list = paged(matching, q).map(Catalog.listEntry);
        return ok({ list, has_more: q.page * q.page_size < matching.length });
      },
    },
  ];
}

