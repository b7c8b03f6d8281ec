/**
 * Packages before and apart from installing them: uploads of a package or bundle, and reading a
 * stored package (its declaration, manifest, readme, whether any tenant installed it).
 */
import { z } from "zod";
import { badRequest, identifierError, notFound } from "../../domain/errors.js";
import { isUniqueIdentifier } from "../../domain/identifier.js";
import { bind, header } from "../../http/daemon-request.js";
import { ok } from "../../http/daemon-response.js";
import type { Route } from "../../http/router.js";
import type { BundleIntake } from "../../services/bundle-intake.js";
import type { Catalog } from "../../services/catalog.js";
import type { MarketplacePrefetch } from "../../services/marketplace-prefetch.js";
import type { PackageIntake } from "../../services/package-intake.js";
import type { Readmes } from "../../services/readmes.js";
import { uploadedFile } from "../uploaded-file.js";
import { identifierQuery, M, uid } from "./common.js";

export interface PackageRouteDeps {
  intake: PackageIntake;
  bundles: BundleIntake;
  prefetch: MarketplacePrefetch;
  readmes: Readmes;
  catalog: Catalog;
  /** The upload caps: a package's, and a bundle's (which holds several packages). */
  uploadLimits: { maxPackageBytes: number; maxBundleBytes: number };
}

export function packageRoutes(deps: PackageRouteDeps): Route[] {
  const { intake, bundles, prefetch, readmes, catalog, uploadLimits } = deps;
  return [
    {
      method: "POST",
      pattern: `${M}/install/upload/package`,
      handler: async (req) => {
        const upload = await uploadedFile(req, "dify_pkg", uploadLimits.maxPackageBytes);
        return ok(await intake.accept(upload.file, upload.fields.get("verify_signature") === "true"));
      },
    },
    {
      method: "POST",
      pattern: `${M}/install/upload/bundle`,
      handler: async (req) => {
        const upload = await uploadedFile(req, "dify_bundle", uploadLimits.maxBundleBytes);
        return ok(await bundles.accept(upload.file, upload.fields.get("verify_signature") === "true"));
      },
    },
    {
      method: "GET",
      pattern: `${M}/decode/from_identifier`,
      handler: async (req) => ok(await intake.decodeStored(bind(req, identifierQuery).plugin_unique_identifier)),
    },
    {
      method: "GET",
      pattern: "/v2/invoke/extract",
      handler: async (req) => {
        const raw = header(req, "x-plugin-unique-identifier");
        if (!raw) throw badRequest("X-Plugin-Unique-Identifier header is required").withStatus(400);
        if (!isUniqueIdentifier(raw)) throw identifierError("invalid plugin unique identifier").withStatus(400);
        return ok(await intake.decodeStored(raw));
      },
    },
    {
      method: "GET",
      pattern: `${M}/fetch/manifest`,
      handler: async (req) => {
        // On AWS an unknown identifier is fetched from the marketplace here, so Dify does not upload it.
        const record = await prefetch.storedOrFetched(bind(req, identifierQuery).plugin_unique_identifier);
        if (!record) throw badRequest("plugin not found");
        return ok(record.declaration);
      },
    },
    {
      method: "GET",
      pattern: `${M}/fetch/identifier`,
      handler: async (req) => ok(await catalog.installedAnywhere(bind(req, identifierQuery).plugin_unique_identifier)),
    },
    {
      method: "GET",
      pattern: `${M}/fetch/readme`,
      handler: async (req) => {
        const q = bind(req, z.object({ plugin_unique_identifier: uid, language: z.string().optional() }));
        const readme = await readmes.find(q.plugin_unique_identifier, q.language ?? "en_US");
        if (!readme) throw notFound("no readme content available for this plugin");
        return ok(readme);
      },
    },
  ];
}
