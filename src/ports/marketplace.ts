/**
 * Where packages come from when Dify does not upload them: the Dify Marketplace (by unique
 * identifier) and GitHub releases. Downloads are size-capped while streaming.
 */
export interface MarketplacePlugin {
  plugin_id: string;
  latest_version: string;
  latest_package_identifier: string;
}

export interface Marketplace {
  /** The package bytes for a marketplace identifier. */
  downloadPackage(uniqueIdentifier: string): Promise<Uint8Array>;
  /** Latest versions of the given plugins; unknown ids are absent. */
  latestVersions(pluginIds: readonly string[]): Promise<MarketplacePlugin[]>;
  /** A release asset of a GitHub repository (`owner/name`). */
  downloadGithubRelease(repo: string, release: string, assetName: string): Promise<Uint8Array>;
}
