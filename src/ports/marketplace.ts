import type { PluginUniqueIdentifier } from "../domain/identifier.js";

/**
 * Where packages come from when Dify does not upload them: the Dify Marketplace (by unique
 * identifier) and GitHub releases. Downloads are size-capped while streaming.
 */
export interface MarketplacePlugin {
  plugin_id: string;
  latest_version: string;
  latest_package_identifier: string;
}

/** One plugin of the marketplace's global snapshot (`GET /api/v1/dist/plugins/manifest.json`). */
export interface MarketplaceSnapshotEntry {
  /** `org/name`. */
  plugin_id: string;
  latest_version: string;
  latest_package_identifier: string;
}

export interface Marketplace {
  /**
   * Every plugin's latest release, in one request (what Dify's auto-upgrade check fetches once
   * per cycle). Entries that do not parse are dropped; a failed request or a body that is not a
   * snapshot throws.
   */
  snapshot(): Promise<MarketplaceSnapshotEntry[]>;
  /** Counts an install on the marketplace (Dify does this before each auto-upgrade). */
  recordInstall(uniqueIdentifier: PluginUniqueIdentifier): Promise<void>;
  /** The package bytes for a marketplace identifier. */
  downloadPackage(uniqueIdentifier: PluginUniqueIdentifier): Promise<Uint8Array>;
  /** Latest versions of the given plugins; unknown ids are absent. */
  latestVersions(pluginIds: readonly string[]): Promise<MarketplacePlugin[]>;
  /** A release asset of a GitHub repository (`owner/name`). */
  downloadGithubRelease(repo: string, release: string, assetName: string): Promise<Uint8Array>;
}
