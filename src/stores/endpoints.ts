/**
 * A tenant's plugin endpoints. Each endpoint is one item in the tenant's partition, found by
 * hook id through gsi1 for public calls. Creating, removing, enabling and disabling an endpoint
 * changes the installation's `endpoints_setups` / `endpoints_active` counters in the same atomic
 * write, guarded by both items' versions, so counters never drift under concurrent calls.
 */
import { z } from "zod";
import { ConditionFailedError, type ItemStore, type WriteOp } from "../ports/item-store.js";
import type { Installation } from "./installations.js";
import { Installations } from "./installations.js";
import { keys } from "./keys.js";

const endpointSchema = z.object({
  id: z.string(),
  created_at: z.string(),
  updated_at: z.string(),
  name: z.string(),
  hook_id: z.string(),
  tenant_id: z.string(),
  user_id: z.string(),
  plugin_id: z.string(),
  expired_at: z.string(),
  enabled: z.boolean(),
  /** As Dify's encrypter returned them (secrets encrypted). */
  settings: z.record(z.string(), z.unknown()),
});

export type Endpoint = z.infer<typeof endpointSchema>;

export interface StoredEndpoint {
  endpoint: Endpoint;
  version: number;
}

/** Optimistic writes are retried this often before giving up (only concurrent writers cause retries). */
const ATTEMPTS = 8;

export class Endpoints {
  private readonly installations: Installations;

  constructor(private readonly items: ItemStore) {
    this.installations = new Installations(items);
  }

  async get(tenantId: string, endpointId: string): Promise<StoredEndpoint | undefined> {
    const item = await this.items.get(keys.endpoint(tenantId, endpointId));
    return item ? { endpoint: endpointSchema.parse(item.data), version: item.version ?? 0 } : undefined;
  }

  async findByHook(hookId: string): Promise<Endpoint | undefined> {
    const [item] = await this.items.query(keys.endpointByHook(hookId).gsi1pk, { index: "gsi1", limit: 1 });
    return item ? endpointSchema.parse(item.data) : undefined;
  }

  /** A tenant's endpoints, newest first. */
  async list(tenantId: string): Promise<Endpoint[]> {
    const items = await this.items.query(keys.tenant(tenantId), { skPrefix: keys.endpointPrefix, descending: true });
    return items.map((i) => endpointSchema.parse(i.data));
  }

  /** Stores a new endpoint and counts it on the installation; false when the plugin is not installed. */
  async create(endpoint: Endpoint): Promise<boolean> {
    return this.retrying(async () => {
      const stored = await this.installations.get(endpoint.tenant_id, endpoint.plugin_id);
      if (!stored) return false;
      await this.items.write([
        { op: "put", item: this.item(endpoint), condition: { kind: "notExists" } },
        counters(stored, 1, endpoint.enabled ? 1 : 0),
      ]);
      return true;
    });
  }

  /** Removes the endpoint and uncounts it; undefined when it does not exist. */
  async remove(tenantId: string, endpointId: string): Promise<Endpoint | undefined> {
    return this.retrying(async () => {
      const current = await this.get(tenantId, endpointId);
      if (!current) return undefined;
      const { endpoint } = current;
      const ops: WriteOp[] = [
        {
          op: "delete",
          key: keys.endpoint(tenantId, endpointId),
          condition: { kind: "versionIs", version: current.version },
        },
      ];
      const stored = await this.installations.get(tenantId, endpoint.plugin_id);
      if (stored) ops.push(counters(stored, -1, endpoint.enabled ? -1 : 0));
      await this.items.write(ops);
      return endpoint;
    });
  }

  /** Enables or disables; undefined when the endpoint does not exist. Setting the current state is a no-op. */
  async setEnabled(tenantId: string, endpointId: string, enabled: boolean): Promise<Endpoint | undefined> {
    return this.retrying(async () => {
      const current = await this.get(tenantId, endpointId);
      if (!current) return undefined;
      if (current.endpoint.enabled === enabled) return current.endpoint;
      const next = { ...current.endpoint, enabled, updated_at: new Date().toISOString() };
      const ops: WriteOp[] = [
        { op: "put", item: this.item(next), condition: { kind: "versionIs", version: current.version } },
      ];
      const stored = await this.installations.get(tenantId, next.plugin_id);
      if (stored) ops.push(counters(stored, 0, enabled ? 1 : -1));
      await this.items.write(ops);
      return next;
    });
  }

  /** Renames and replaces the settings if nobody changed the endpoint since it was read. */
  async update(current: StoredEndpoint, name: string, settings: Record<string, unknown>): Promise<void> {
    const next = { ...current.endpoint, name, settings, updated_at: new Date().toISOString() };
    await this.items.write([
      { op: "put", item: this.item(next), condition: { kind: "versionIs", version: current.version } },
    ]);
  }

  private item(endpoint: Endpoint) {
    return {
      ...keys.endpoint(endpoint.tenant_id, endpoint.id),
      ...keys.endpointByHook(endpoint.hook_id),
      data: endpoint,
    };
  }

  private async retrying<T>(attempt: () => Promise<T>): Promise<T> {
    for (let i = 1; ; i++) {
      try {
        return await attempt();
      } catch (err) {
        if (!(err instanceof ConditionFailedError) || i >= ATTEMPTS) throw err;
      }
    }
  }
}

/** The installation rewritten with adjusted counters, only if it is still the version read. */
function counters(stored: { installation: Installation; version: number }, setups: number, active: number): WriteOp {
  const i = stored.installation;
  const next: Installation = {
    ...i,
    endpoints_setups: Math.max(0, i.endpoints_setups + setups),
    endpoints_active: Math.max(0, i.endpoints_active + active),
  };
  return {
    op: "put",
    item: { ...keys.installation(i.tenant_id, i.plugin_id), ...keys.installationById(i.id), data: next },
    condition: { kind: "versionIs", version: stored.version },
  };
}
