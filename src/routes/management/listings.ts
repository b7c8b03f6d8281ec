/** A tenant's installed plugins as Dify lists and searches them (the catalog answers the queries). */
import { z } from "zod";
import { PLUGIN_TAGS } from "../../domain/manifest.js";
import { bind, pagination } from "../../http/daemon-request.js";
import { ok } from "../../http/daemon-response.js";
import type { Route } from "../../http/router.js";
import { Catalog, LISTING_LANGUAGES } from "../../services/catalog.js";
import { invalidCategory, isCategory, M, page, paged, tenantOf, uid } from "./common.js";

const tag = z.enum(PLUGIN_TAGS);
const searchQuery = z.object({
  ...pagination(),
  query: z.string().max(256).optional(),
  tags: z.union([tag, z.array(tag).max(128)]).optional(),
  language: z.enum(LISTING_LANGUAGES).optional(),
});

/** Ends in `:category/list`, which would shadow any `<word>/list` route served after it. */
export function listingRoutes(catalog: Catalog): Route[] {
  return [
    {
      method: "GET",
      pattern: `${M}/list`,
      handler: async (req) => {
        const p = bind(req, page);
        const all = (await catalog.installed(tenantOf(req))).map(Catalog.listEntry);
        return ok({ list: paged(all, p), total: all.length });
      },
    },
    {
      method: "GET",
      pattern: `${M}/installation/ids`,
      handler: async (req) => {
        // Required upstream; a value outside the list passes binding and is refused by the service.
        const { category } = bind(req, z.object({ category: z.string().min(1) }));
        if (!isCategory(category)) throw invalidCategory();
        return ok({ plugin_ids: await catalog.pluginIds(tenantOf(req), category) });
      },
    },
    {
      method: "POST",
      pattern: `${M}/installation/fetch/batch`,
      handler: async (req) => {
        const body = bind(req, z.object({ plugin_ids: z.array(z.string()).max(256) }));
        return ok((await catalog.installedPlugins(tenantOf(req), body.plugin_ids)).map(Catalog.listEntry));
      },
    },
    {
      method: "POST",
      pattern: `${M}/installation/missing`,
      handler: async (req) => {
        const body = bind(req, z.object({ plugin_unique_identifiers: z.array(uid).max(256) }));
        return ok(await catalog.missing(tenantOf(req), body.plugin_unique_identifiers));
      },
    },
    {
      method: "GET",
      pattern: `${M}/:category/list`,
      handler: async (req) => {
        const q = bind(req, searchQuery);
        // Checked after binding, as upstream's service does (HTTP 200, -400).
        const category = req.params.category;
        if (!isCategory(category)) throw invalidCategory();
        const matching = await catalog.search(tenantOf(req), category, {
          query: q.query,
          tags: q.tags === undefined ? [] : ([] as string[]).concat(q.tags),
          language: q.language,
        });
        return ok({
          list: paged(matching, q).map(Catalog.listEntry),
          has_more: q.page * q.page_size < matching.length,
        });
      },
    },
  ];
}
