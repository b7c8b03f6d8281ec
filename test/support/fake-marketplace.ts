/**
 * A Dify Marketplace over real HTTP on a loopback port, with the endpoints the daemon uses, in
 * their real formats:
 * - `GET  /api/v1/dist/plugins/manifest.json` → `{plugins: [{org, name, latest_version, latest_package_identifier, latest_package_url}]}`
 * - `POST /api/v1/plugins/batch` `{plugin_ids}` → `{code, msg, data: {plugins: [MarketplacePluginDeclaration]}}`
 * - `GET  /api/v1/plugins/download?unique_identifier=…` and `/api/v1/plugins/{org}/{name}/{version}/download` → package bytes
 * - `POST /api/v1/stats/plugins/install_count` `{unique_identifier}`
 * Tests publish packages (built from the fixture plugins), choose each plugin's latest release,
 * and can make the marketplace fail: down (503), garbage bodies, broken downloads.
 */

import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { packageChecksum } from "../../src/domain/checksum.js";
import { loadDeclaration } from "../../src/domain/declaration.js";
import {
  formatUniqueIdentifier,
  type PluginUniqueIdentifier,
  parseUniqueIdentifier,
  uniqueIdentifier,
} from "../../src/domain/identifier.js";
import { DEFAULT_PACKAGE_LIMITS, readPackage } from "../../src/domain/package-archive.js";
import { fixturesDir, packFixture } from "./fixture-packages.js";

/** What the snapshot endpoint answers. */
export type SnapshotMode = "ok" | "down" | "not-json" | "no-plugins" | "garbage-entries";

interface Listing {
  version: string;
  uid: string;
}

/** The identifier the daemon computes for a package (same algorithm as upstream's). */
export async function identifierOf(bytes: Uint8Array): Promise<PluginUniqueIdentifier> {
  const archive = await readPackage(bytes, DEFAULT_PACKAGE_LIMITS);
  const declaration = loadDeclaration(
    (path) => archive.file(path),
    archive.entries.map((e) => e.name),
  );
  return formatUniqueIdentifier({
    author: declaration.author || undefined,
    name: declaration.name,
    version: declaration.version,
    checksum: packageChecksum(archive.entries),
  });
}

/** The echo-tool fixture as plugin `fixtures/<name>` at `version`. */
export function echoToolPackage(version: string, name = "echo-tool"): Promise<Uint8Array> {
  const manifest = readFileSync(join(fixturesDir, "echo-tool", "manifest.yaml"), "utf8")
    .replace(/^version: .*$/m, `version: ${version}`)
    .replace(/^name: .*$/m, `name: ${name}`);
  return packFixture("echo-tool", { files: { "manifest.yaml": manifest } });
}

/** A syntactically valid identifier for a listing that has no package behind it. */
export const syntheticIdentifier = (pluginId: string, version: string) =>
  uniqueIdentifier(`${pluginId}:${version}@${randomBytes(32).toString("hex")}`);

export class FakeMarketplace {
  snapshotMode: SnapshotMode = "ok";
  /** Requests per endpoint: snapshot, batch, download, install_count. */
  readonly requests = { snapshot: 0, batch: 0, download: 0, install_count: 0 };
  readonly installCounts: string[] = [];
  private readonly packages = new Map<string, Uint8Array>();
  private readonly broken = new Set<string>();
  private readonly latest = new Map<string, Listing>();
  private readonly githubAssets = new Map<string, Uint8Array>();

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(): Promise<FakeMarketplace> {
    let market: FakeMarketplace | undefined;
    const server = createServer((req, res) => {
      (market as FakeMarketplace).handle(req, res).catch((err: unknown) => {
        res.writeHead(500, { "content-type": "text/plain" });
        res.end(String(err));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    market = new FakeMarketplace(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    return market;
  }

  /** Makes a package downloadable; returns its identifier. Does not change the latest release. */
  async publish(bytes: Uint8Array): Promise<PluginUniqueIdentifier> {
    const uid = await identifierOf(bytes);
    this.packages.set(uid, bytes);
    return uid;
  }

  /** Publishes a package and makes it its plugin's latest release. */
  async release(bytes: Uint8Array): Promise<PluginUniqueIdentifier> {
    const uid = await this.publish(bytes);
    this.setLatest(uid);
    return uid;
  }

  /** Lists `uid` as its plugin's latest release (with or without a package behind it). */
  setLatest(uid: string): void {
    const id = parseUniqueIdentifier(uid);
    this.latest.set(id.pluginId, { version: id.version, uid });
  }

  unlist(pluginId: string): void {
    this.latest.delete(pluginId);
  }

  /** Serves `bytes` under an identifier they do not hash to (a marketplace answering the wrong file). */
  publishAs(uid: string, bytes: Uint8Array): void {
    this.packages.set(uid, bytes);
  }

  /** A GitHub release asset, served at `/<repo>/releases/download/<tag>/<asset>` like github.com. */
  publishGithubRelease(repo: string, tag: string, asset: string, bytes: Uint8Array): void {
    this.githubAssets.set(`/${repo}/releases/download/${tag}/${asset}`, bytes);
  }

  /** Downloads of this identifier answer garbage bytes. */
  breakDownload(uid: string): void {
    this.broken.add(uid);
  }

  /** Adds `count` other plugins to the listing, as the real marketplace has thousands. */
  addOtherPlugins(count: number, org = "others"): void {
    for (let i = 0; i < count; i++) this.setLatest(syntheticIdentifier(`${org}/plugin-${i}`, `1.${i % 10}.${i % 7}`));
  }

  resetCounters(): void {
    for (const key of Object.keys(this.requests) as Array<keyof FakeMarketplace["requests"]>) this.requests[key] = 0;
    this.installCounts.length = 0;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", this.url);
    const path = url.pathname;
    if (req.method === "GET" && path === "/api/v1/dist/plugins/manifest.json") return this.snapshot(res);
    if (req.method === "POST" && path === "/api/v1/plugins/batch") return this.batch(req, res);
    if (req.method === "POST" && path === "/api/v1/stats/plugins/install_count") {
      this.requests.install_count++;
      const body = JSON.parse(await readBody(req)) as { unique_identifier: string };
      this.installCounts.push(body.unique_identifier);
      return sendJson(res, 200, { code: 0, msg: "success", data: {} });
    }
    if (req.method === "GET" && path === "/api/v1/plugins/download") {
      return this.download(res, url.searchParams.get("unique_identifier") ?? "");
    }
    const githubAsset = this.githubAssets.get(path);
    if (req.method === "GET" && githubAsset) {
      res.writeHead(200, { "content-type": "application/octet-stream" });
      res.end(Buffer.from(githubAsset));
      return;
    }
    const byVersion = /^\/api\/v1\/plugins\/([^/]+)\/([^/]+)\/([^/]+)\/download$/.exec(path);
    if (req.method === "GET" && byVersion) {
      const [, org, name, version] = byVersion as unknown as [string, string, string, string];
      const uid = [...this.packages.keys()].find((u) => {
        const id = parseUniqueIdentifier(u);
        return id.pluginId === `${org}/${name}` && id.version === version;
      });
      return this.download(res, uid ?? "");
    }
    sendJson(res, 404, { code: -404, msg: "not found" });
  }

  private snapshot(res: ServerResponse): void {
    this.requests.snapshot++;
    switch (this.snapshotMode) {
      case "down":
        res.writeHead(503, { "content-type": "text/html" });
        res.end("<html><body>503 Service Unavailable</body></html>");
        return;
      case "not-json":
        res.writeHead(200, { "content-type": "text/html" });
        res.end("<html><body>maintenance</body></html>");
        return;
      case "no-plugins":
        return sendJson(res, 200, { data: "nothing to see" });
      case "garbage-entries":
        return sendJson(res, 200, {
          plugins: [
            42,
            { org: "fixtures" },
            ...[...this.latest.entries()].map(([pluginId, l]) => {
              const [org, name] = pluginId.split("/") as [string, string];
              // Every entry contradicts itself: the identifier names another version.
              return { org, name, latest_version: "99.0.0", latest_package_identifier: l.uid, latest_package_url: "" };
            }),
          ],
        });
      case "ok":
        return sendJson(res, 200, {
          plugins: [...this.latest.entries()].map(([pluginId, l]) => {
            const [org, name] = pluginId.split("/") as [string, string];
            return {
              org,
              name,
              latest_version: l.version,
              latest_package_identifier: l.uid,
              latest_package_url: `${this.url}/api/v1/plugins/${org}/${name}/${l.version}/download`,
            };
          }),
        });
    }
  }

  private async batch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.requests.batch++;
    const body = JSON.parse(await readBody(req)) as { plugin_ids?: string[] };
    const plugins = (body.plugin_ids ?? []).flatMap((pluginId) => {
      const l = this.latest.get(pluginId);
      if (!l) return [];
      const [org, name] = pluginId.split("/") as [string, string];
      return [
        {
          name,
          org,
          plugin_id: pluginId,
          icon: "",
          label: { en_US: name },
          brief: { en_US: name },
          resource: { memory: 134_217_728 },
          endpoint: {},
          model: null,
          tool: null,
          latest_version: l.version,
          latest_package_identifier: l.uid,
          status: "active",
          deprecated_reason: "",
          alternative_plugin_id: "",
        },
      ];
    });
    sendJson(res, 200, { code: 0, msg: "success", data: { plugins } });
  }

  private download(res: ServerResponse, uid: string): void {
    this.requests.download++;
    if (this.broken.has(uid)) {
      res.writeHead(200, { "content-type": "application/octet-stream" });
      res.end(Buffer.from("this is not a plugin package"));
      return;
    }
    const bytes = this.packages.get(uid);
    if (!bytes) return sendJson(res, 404, { code: -404, msg: "plugin not found" });
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(bytes.byteLength) });
    res.end(Buffer.from(bytes));
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on("data", (c: Buffer) => parts.push(c));
    req.on("end", () => resolve(Buffer.concat(parts).toString("utf8")));
    req.on("error", reject);
  });
}
