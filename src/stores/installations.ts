/**
 * A tenant's plugin installations. The item key is (tenant, plugin id), so a second concurrent
 * install of the same plugin fails its `notExists` condition instead of creating a duplicate;
 * an upgrade swaps the identifier under a version condition together with the package
 * reference items, in one atomic write.
 */
import { z } from "zod";
import { uniqueIdentifierSchema } from "../domain/identifier.js";
import { ConditionFailedError, type ItemStore } from "../ports/item-store.js";
import { compareText } from "../shared/compare-text.js";
import { keys } from "./keys.js";

export const runtimeTypes = ["local", "remote", "serverless"] as const;

const installationSchema = z.object({
  id: z.string(),
  tenant_id: z.string(),
  plugin_id: z.string(),
  plugin_unique_identifier: uniqueIdentifierSchema,
  runtime_type: z.enum(runtimeTypes),
  source: z.string(),
  meta: z.record(z.string(), z.unknown()),
  endpoints_setups: z.number().int(),
  endpoints_active: z.number().int(),
  created_at: z.string(),
  updated_at: z.string(),
});

export type Installation = z.infer<typeof installationSchema>;

export interface StoredInstallation {
  installation: Installation;
  version: number;
}

/** Identifiers remembered at most; past it the memo starts over (it refills at one read each). */
const IDENTIFIERS_REMEMBERED = 10_000;

export class Installations {
  /** Installed identifiers by tenant and plugin, valid while the store's change stamp is `stampOfIdentifiers`. */
  private readonly identifiers = new Map<string, Installation["plugin_unique_identifier"]>();
  private stampOfIdentifiers: string | undefined;

  constructor(private readonly items: ItemStore) {}

  async get(tenantId: string, pluginId: string): Promise<StoredInstallation | undefined> {
    const item = await this.items.get(keys.installation(tenantId, pluginId));
    return item ? { installation: installationSchema.parse(item.data), version: item.version ?? 0 } : undefined;
  }

  /**
   * The identifier a tenant has installed for a plugin, which every dispatch resolves. Remembered
   * while the store reports no write since it was read (upstream keeps it in Redis for the same
   * reason: internal/server/middleware.go FetchPluginInstallation, langgenius/dify-plugin-daemon
   * @bdb5642a); read each time from a store that cannot tell.
   */
  async installedIdentifier(
    tenantId: string,
    pluginId: string,
  ): Promise<Installation["plugin_unique_identifier"] | undefined> {
    const stamp = this.items.changeStamp?.();
    if (stamp === undefined) return (await this.get(tenantId, pluginId))?.installation.plugin_unique_identifier;
    if (stamp !== this.stampOfIdentifiers) {
      this.identifiers.clear();
      this.stampOfIdentifiers = stamp;
    }
    const key = JSON.stringify([tenantId, pluginId]);
    const known = this.identifiers.get(key);
    if (known !== undefined) return known;
    const found = (await this.get(tenantId, pluginId))?.installation.plugin_unique_identifier;
    // Kept only if nothing was written while it was read.
    if (found !== undefined && this.items.changeStamp?.() === stamp) {
      if (this.identifiers.size >= IDENTIFIERS_REMEMBERED) this.identifiers.clear();
      this.identifiers.set(key, found);
    }
    return found;
  }

  /** All of a tenant's installations, newest first (as upstream lists them). */
  async list(tenantId: string): Promise<Installation[]> {
    const items = await this.items.query(keys.tenant(tenantId), { skPrefix: keys.installationPrefix });
    return items
      .map((i) => installationSchema.parse(i.data))
      .sort((a, b) => compareText(b.created_at, a.created_at) || compareText(b.id, a.id));
  }

  async findById(installationId: string): Promise<Installation | undefined> {
    const [item] = await this.items.query(keys.installationById(installationId).gsi1pk, { index: "gsi1", limit: 1 });
    return item ? installationSchema.parse(item.data) : undefined;
  }

  /** Creates the installation and its package reference; false when the plugin is already installed. */
  async create(installation: Installation): Promise<boolean> {
    try {
      await this.items.write([
        {
          op: "put",
          item: {
            ...keys.installation(installation.tenant_id, installation.plugin_id),
            ...keys.installationById(installation.id),
            data: installation,
          },
          condition: { kind: "notExists" },
        },
        {
          op: "put",
          item: {
            ...keys.packageUse(installation.plugin_unique_identifier, installation.tenant_id),
            data: { tenant_id: installation.tenant_id },
          },
        },
      ]);
      return true;
    } catch (err) {
      if (err instanceof ConditionFailedError) return false;
      throw err;
    }
  }

  /** Switches an installation to a new identifier if nobody changed it since it was read. */
  async replace(current: StoredInstallation, next: Installation): Promise<void> {
    const old = current.installation;
    const ops: Parameters<ItemStore["write"]>[0] = [
      {
        op: "put",
        item: {
          ...keys.installation(next.tenant_id, next.plugin_id),
          ...keys.installationById(next.id),
          data: next,
          version: current.version,
        },
        condition: { kind: "versionIs", version: current.version },
      },
      {
        op: "put",
        item: {
          ...keys.packageUse(next.plugin_unique_identifier, next.tenant_id),
          data: { tenant_id: next.tenant_id },
        },
      },
    ];
    if (old.plugin_unique_identifier !== next.plugin_unique_identifier) {
      ops.push({ op: "delete", key: keys.packageUse(old.plugin_unique_identifier, old.tenant_id) });
    }
    await this.items.write(ops);
  }

  /** Removes the installation and its package reference; false when it was already gone. */
  async remove(installation: Installation): Promise<boolean> {
    try {
      await this.items.write([
        {
          op: "delete",
          key: keys.installation(installation.tenant_id, installation.plugin_id),
          condition: { kind: "exists" },
        },
        { op: "delete", key: keys.packageUse(installation.plugin_unique_identifier, installation.tenant_id) },
      ]);
      return true;
    } catch (err) {
      if (err instanceof ConditionFailedError) return false;
      throw err;
    }
  }
}
