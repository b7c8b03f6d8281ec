/** Icons and other package files, served raw (Dify reads the bytes, not an envelope). */
import { z } from "zod";
import { internalError } from "../domain/errors.js";
import { isUniqueIdentifier } from "../domain/identifier.js";
import type { PackageArchive } from "../domain/package-archive.js";
import { bind } from "../http/daemon-request.js";
import { bytes } from "../http/daemon-response.js";
import type { Route } from "../http/router.js";
import type { PackageIntake } from "../services/package-intake.js";
import type { PackageRecords } from "../stores/package-records.js";

export interface AssetRouteDeps {
  packages: PackageRecords;
  intake: PackageIntake;
}

export function assetRoutes({ packages, intake }: AssetRouteDeps): Route[] {
  return [
    {
      method: "GET",
      pattern: "/plugin/:tenant_id/asset/:asset_id",
      // Upstream answers a missing asset with an empty 200 body.
      handler: async (req) => bytes((await packages.asset(req.params.asset_id ?? "")) ?? new Uint8Array()),
    },
    {
      method: "GET",
      pattern: "/plugin/:tenant_id/extract-asset",
      // Dify's web UI strips `./_assets/` from a README image and asks for the rest: upstream looks
      // it up among the package's assets (the files under `_assets/`, named without that prefix),
      // answers a name it does not have with an empty 200, and only a package it cannot read with
      // HTTP 500 (controllers/plugins.go ExtractPluginAsset, plugin_manager/manager.go
      // ExtractPluginAsset, langgenius/dify-plugin-daemon@bdb5642a).
      handler: async (req) => {
        const q = bind(
          req,
          z.object({ plugin_unique_identifier: z.string().refine(isUniqueIdentifier), file_path: z.string().min(1) }),
        );
        let archive: PackageArchive;
        try {
          archive = await intake.archiveOf(q.plugin_unique_identifier);
        } catch (err) {
          throw internalError(err instanceof Error ? err.message : String(err)).withStatus(500);
        }
        return bytes(archive.file(`_assets/${q.file_path}`) ?? new Uint8Array());
      },
    },
  ];
}
