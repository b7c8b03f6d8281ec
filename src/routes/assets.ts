/** Icons and other package files, served raw (Dify reads the bytes, not an envelope). */
import { z } from "zod";
import { bind } from "../http/daemon-request.js";
import { bytes } from "../http/daemon-response.js";
import type { Route } from "../http/router.js";
import { isUniqueIdentifier } from "../domain/identifier.js";
import { badRequest } from "../domain/errors.js";
import type { Daemon } from "../daemon.js";

export function assetRoutes(d: Daemon): Route[] {
  return [
    {
      method: "GET",
      pattern: "/plugin/:tenant_id/asset/:asset_id",
      // Upstream answers a missing asset with an empty 200 body.
      handler: async (req) => bytes((await d.packages.asset(req.params.asset_id ?? "")) ?? new Uint8Array()),
    },
    {
      method: "GET",
      pattern: "/plugin/:tenant_id/extract-asset",
      handler: async (req) => {
        const q = bind(req, z.object({ plugin_unique_identifier: z.string().refine(isUniqueIdentifier), file_path: z.string().min(1) }));
        const file = (await d.intake.archiveOf(q.plugin_unique_identifier)).file(q.file_path);
        if (!file) throw badRequest(`file ${q.file_path} not found in the package`);
        return bytes(file);
      },
    },
  ];
}
