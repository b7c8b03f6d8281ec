/**
 * The Dify Marketplace and GitHub over HTTP (fetch). Used by both deployments: the marketplace
 * is reached the same way from Lambda and from the local daemon.
 */
import { z } from "zod";
import { badRequest } from "../domain/errors.js";
import type { PluginUniqueIdentifier } from "../domain/identifier.js";
import type { Marketplace, MarketplacePlugin, MarketplaceSnapshotEntry } from "../ports/marketplace.js";

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

/** `MarketplacePluginSnapshot` in Dify (api/core/plugin/entities/marketplace.py); the URL is not needed. */
const snapshotEntrySchema = z
  .object({
    org: z.string().min(1),
    name: z.string().min(1),
    latest_version: z.string().min(1),
    latest_package_identifier: z.string().min(1),
  })
  .loose();
const snapshotSchema = z.object({ plugins: z.array(z.unknown()) }).loose();

/** The snapshot lists every marketplace plugin; far below this in practice, but never unbounded. */
const MAX_SNAPSHOT_BYTES = 64 * 1024 * 1024;

export interface HttpMarketplaceOptions {
  marketplaceUrl: string;
  githubUrl: string;
  maxPackageBytes: number;
  timeoutMs?: number;
}

export class HttpMarketplace implements Marketplace {
  constructor(private readonly options: HttpMarketplaceOptions) {}

  downloadPackage(uniqueIdentifier: PluginUniqueIdentifier): Promise<Uint8Array> {
    const url = new URL(`${this.options.marketplaceUrl}/api/v1/plugins/download`);
    url.searchParams.set("unique_identifier", uniqueIdentifier);
    return this.download(url, `marketplace package ${uniqueIdentifier}`);
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

  async snapshot(): Promise<MarketplaceSnapshotEntry[]> {
    const url = `${this.options.marketplaceUrl}/api/v1/dist/plugins/manifest.json`;
    let res: Response | undefined;
    // One retry on a network error: a kept-alive connection the server just closed fails that way.
    for (let attempt = 0; !res; attempt++) {
      try {
        res = await fetch(url, { signal: AbortSignal.timeout(this.options.timeoutMs ?? 30_000) });
      } catch (err) {
        const timedOut = err instanceof Error && err.name === "TimeoutError";
        if (timedOut || attempt >= 1) throw new Error(`marketplace snapshot request failed: ${networkError(err)}`);
      }
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new Error(`marketplace snapshot request failed: HTTP ${res.status}`);
    }
    const text = await readCapped(res, MAX_SNAPSHOT_BYTES, "marketplace snapshot");
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new Error("marketplace snapshot is not JSON");
    }
    const parsed = snapshotSchema.safeParse(body);
    if (!parsed.success) throw new Error("marketplace snapshot has no plugins list");
    const entries: MarketplaceSnapshotEntry[] = [];
    for (const raw of parsed.data.plugins) {
      const entry = snapshotEntrySchema.safeParse(raw);
      if (!entry.success) continue;
      const { org, name, latest_version, latest_package_identifier } = entry.data;
      entries.push({ plugin_id: `${org}/${name}`, latest_version, latest_package_identifier });
    }
    return entries;
  }

  async recordInstall(uniqueIdentifier: PluginUniqueIdentifier): Promise<void> {
    const res = await fetch(`${this.options.marketplaceUrl}/api/v1/stats/plugins/install_count`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ unique_identifier: uniqueIdentifier }),
      // Only a counter: never worth holding up an upgrade for long.
      signal: AbortSignal.timeout(Math.min(this.options.timeoutMs ?? 5_000, 5_000)),
    });
    await res.body?.cancel();
    if (!res.ok) throw new Error(`marketplace install count failed: HTTP ${res.status}`);
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
      if (size > limit)
        throw badRequest(`failed to download ${what}: file size exceeds the maximum limit of ${limit} bytes`);
      chunks.push(chunk);
    }
    return Buffer.concat(chunks);
  }
}

/** Reads a text body, failing once it passes `limit` bytes. */
async function readCapped(res: Response, limit: number, what: string): Promise<string> {
  if (!res.body) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += chunk.byteLength;
    if (size > limit) throw new Error(`${what} exceeds ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** fetch's own message is only "fetch failed"; the cause says what went wrong. */
function networkError(err: unknown): string {
  const cause = (err as { cause?: unknown }).cause;
  const detail = cause instanceof Error ? cause.message : cause === undefined ? "" : String(cause);
  const message = err instanceof Error ? err.message : String(err);
  return detail ? `${message} (${detail})` : message;
}
