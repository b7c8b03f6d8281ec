/** What the management route modules share: the path prefix, request shapes and upstream's paging. */
import { z } from "zod";
import { badRequest } from "../../domain/errors.js";
import { isUniqueIdentifier } from "../../domain/identifier.js";
import type { PluginCategory } from "../../domain/manifest.js";
import { type DaemonRequest, pagination } from "../../http/daemon-request.js";
import { PLUGIN_CATEGORIES } from "../../services/catalog.js";

export const M = "/plugin/:tenant_id/management";

export const uid = z.string().refine(isUniqueIdentifier, { message: "plugin_unique_identifier is not valid" });
export const identifierQuery = z.object({ plugin_unique_identifier: uid });
export const page = z.object(pagination());

/** One page of an already complete list, as upstream pages in memory. */
export const paged = <T>(items: T[], p: { page: number; page_size: number }) =>
  items.slice((p.page - 1) * p.page_size, p.page * p.page_size);

export const tenantOf = (req: DaemonRequest) => req.params.tenant_id ?? "";

export const isCategory = (c: string | undefined): c is PluginCategory =>
  PLUGIN_CATEGORIES.includes(c as PluginCategory);

/** Upstream's answer to a category outside the list, after binding (HTTP 200, -400). */
export const invalidCategory = () => badRequest("invalid plugin category");
