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
import { isRemoteLike, type PluginUniqueIdentifier } from "../domain/identifier.js";
import { logger } from "../logger.js";
import type { Marketplace } from "../ports/marketplace.js";
import type { PackageRecord, PackageRecords } from "../stores/package-records.js";
import type { PackageIntake } from "./package-intake.js";

export interface MarketplacePrefetchDeps {
  /** Off: unknown identifiers are "not found", as upstream answers (FETCH_MISSING_MARKETPLACE_PACKAGES). */
  enabled: boolean;
  /** With a timeout that fits the management handler's 29 s. */
  marketplace: Pick<Marketplace, "downloadPackage">;
  intake: Pick<PackageIntake, "accept">;
  packages: Pick<PackageRecords, "get">;
}

export class MarketplacePrefetch {
  constructor(private readonly deps: MarketplacePrefetchDeps) {}

  /**
   * The stored package record, downloading the package from the marketplace first when it is not
   * stored yet. Undefined when it is neither stored nor on the marketplace (or fetching is off):
   * the caller answers "not found" as before.
   */
  async storedOrFetched(uniqueIdentifier: PluginUniqueIdentifier): Promise<PackageRecord | undefined> {
    const { packages, intake, marketplace, enabled } = this.deps;
    const stored = await packages.get(uniqueIdentifier);
    if (stored || !enabled) return stored;
    // Remote-debugging identifiers (a tenant id as author) are never on the marketplace.
    if (isRemoteLike(uniqueIdentifier)) return undefined;
    try {
      const bytes = await marketplace.downloadPackage(uniqueIdentifier);
      // The identifier names the checksum: a package that is not exactly that one is refused.
      await intake.accept(bytes, false, uniqueIdentifier);
    } catch (err) {
      logger.info(
        { uniqueIdentifier, err: (err as Error).message },
        "package not stored and not fetched from the marketplace",
      );
      return undefined;
    }
    return packages.get(uniqueIdentifier);
  }
}
