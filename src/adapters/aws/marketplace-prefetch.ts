/**
 * Marketplace packages fetched by the daemon itself, so Dify never uploads them.
 *
 * Dify installs from the marketplace by asking `fetch/manifest` first and, when the daemon does not
 * know the identifier, downloading the package and uploading it (langgenius/dify,
 * api/services/plugin/plugin_service.py, install_from_marketplace_pkg, fetch_marketplace_pkg and
 * upgrade_plugin_with_marketplace at commit 00b4f87). On AWS that upload goes through API Gateway
 * and Lambda, whose 6 MB request limit caps a multipart upload at about 4.4 MB once base64-encoded,
 * while marketplace packages reach Dify's own 15 MiB cap. Answering `fetch/manifest` for an
 * identifier the marketplace has, after downloading it here, makes Dify skip its upload.
 */
import { HttpMarketplace } from "../http-marketplace.js";
import { isRemoteLike, isUniqueIdentifier, parseUniqueIdentifier } from "../../domain/identifier.js";
import { logger } from "../../logger.js";
import type { DaemonConfig } from "../../config.js";
import type { PackageIntake } from "../../services/package-intake.js";
import type { PackageRecord, PackageRecords } from "../../stores/package-records.js";

/** The management handler must answer within API Gateway's 29 s: a download may take most of it. */
const DOWNLOAD_TIMEOUT_MS = 20_000;

export interface PrefetchDeps {
  config: Pick<DaemonConfig, "marketplaceUrl" | "githubUrl" | "packageLimits" | "fetchMissingMarketplacePackages">;
  intake: Pick<PackageIntake, "accept">;
  packages: Pick<PackageRecords, "get">;
}

const marketplaces = new Map<string, HttpMarketplace>();

/**
 * The stored package record, downloading the package from the marketplace first when it is not
 * stored yet. Undefined when it is neither stored nor on the marketplace (or fetching is off):
 * the caller answers "not found" as before.
 */
export async function storedOrFetched(deps: PrefetchDeps, uniqueIdentifier: string): Promise<PackageRecord | undefined> {
  const stored = await deps.packages.get(uniqueIdentifier);
  if (stored || !deps.config.fetchMissingMarketplacePackages || !isUniqueIdentifier(uniqueIdentifier)) return stored;
  // Remote-debugging identifiers (a tenant id as author) are never on the marketplace.
  if (isRemoteLike(parseUniqueIdentifier(uniqueIdentifier))) return undefined;
  const { marketplaceUrl, githubUrl, packageLimits } = deps.config;
  let marketplace = marketplaces.get(marketplaceUrl);
  if (!marketplace) {
    marketplace = new HttpMarketplace({ marketplaceUrl, githubUrl, maxPackageBytes: packageLimits.maxPackageBytes, timeoutMs: DOWNLOAD_TIMEOUT_MS });
    marketplaces.set(marketplaceUrl, marketplace);
  }
  try {
    const bytes = await marketplace.downloadPackage(uniqueIdentifier);
    // The identifier names the checksum: a package that is not exactly that one is refused.
    await deps.intake.accept(bytes, false, uniqueIdentifier);
  } catch (err) {
    logger.info({ uniqueIdentifier, err: (err as Error).message }, "package not stored and not fetched from the marketplace");
    return undefined;
  }
  return deps.packages.get(uniqueIdentifier);
}
