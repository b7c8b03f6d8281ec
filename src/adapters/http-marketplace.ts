/**
 * The Dify Marketplace and GitHub over HTTP (fetch). Used by both deployments: the marketplace
 * is reached the same way from Lambda and from the local daemon.
 */
import { z } from "zod";
import { badRequest } from "../domain/errors.js";
import { parseUniqueIdentifier } from "../domain/identifier.js";
import type { Marketplace, MarketplacePlugin } from "../ports/marketplace.js";

const batchResponseSchema = z.object({
  data: z.object({
    plugins: z.array(
      z
        .object({
          plugin_id: z.string(),
          latest_version: z.string(),
          latest_package_identifier: z.string(),
        })
        .loose(),
    ),
  }),
});

export interface HttpMarketplaceOptions {
  marketplaceUrl: string;
  githubUrl: string;
  maxPackageBytes: number;
  timeoutMs?: number;
}

export class HttpMarketplace implements Marketplace {
  constructor(private readonly options: HttpMarketplaceOptions) {}

  downloadPackage(uniqueIdentifier: string): Promise<Uint8Array> {
    const id = parseUniqueIdentifier(uniqueIdentifier);
    const url = new URL(`${this.options.marketplaceUrl}/api/v1/plugins/download`);
    url.searchParams.set("unique_identifier", id.raw);
    return this.download(url, `marketplace package ${id.raw}`);
  }

  async latestVersions(pluginIds: readonly string[]): Promise<MarketplacePlugin[]> {
    if (pluginIds.length === 0) return [];
    const res = await fetch(`${this.options.marketplaceUrl}/api/v1/plugins/batch`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ plugin_ids: pluginIds }),
      signal: AbortSignal.timeout(this.options.timeoutMs ?? 30_000),
    });
    if (!res.ok) throw new Error(`marketplace batch query failed: HTTP ${res.status}`);
    return batchResponseSchema.parse(await res.json()).data.plugins;
  }

  downloadGithubRelease(repo: string, release: string, assetName: string): Promise<Uint8Array> {
    if (!/^[\w.-]+\/[\w.-]+$/.test(repo)) throw badRequest(`invalid github repository: ${repo}`);
    const url = new URL(
      `${this.options.githubUrl}/${repo}/releases/download/${encodeURIComponent(release)}/${encodeURIComponent(assetName)}`,
    );
    return this.download(url, `github release asset ${repo}@${release}/${assetName}`);
  }

  /** Streams the body and stops as soon as it passes the size cap. */
  private async download(url: URL, what: string): Promise<Uint8Array> {
    const limit = this.options.maxPackageBytes;
    let res: Response;
    try {
      res = await fetch(url, { redirect: "follow", signal: AbortSignal.timeout(this.options.timeoutMs ?? 300_000) });
    } catch (err) {
      throw badRequest(`failed to download ${what}: ${(err as Error).message}`);
    }
    if (!res.ok || !res.body) throw badRequest(`failed to download ${what}: HTTP ${res.status}`);
    const declared = Number(res.headers.get("content-length") ?? "0");
    if (declared > limit) {
      await res.body.cancel();
      throw badRequest(`failed to download ${what}: file size exceeds the maximum limit of ${limit} bytes`);
    }
    const chunks: Uint8Array[] = [];
    let size = 0;
    for await (const chunk of res.body) {
      size += chunk.byteLength;
      if (size > limit) throw badRequest(`failed to download ${what}: file size exceeds the maximum limit of ${limit} bytes`);
      chunks.push(chunk);
    }
    return Buffer.concat(chunks);
  }
}
