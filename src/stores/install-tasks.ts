/**
 * Install tasks per tenant. Finished successful tasks expire (upstream deletes them 120 s after
 * success); failed ones stay until Dify deletes them, so the user can read the message.
 */
import { z } from "zod";
import { uniqueIdentifierSchema } from "../domain/identifier.js";
import { type InstallTask, isTerminal } from "../domain/install-task.js";
import type { ItemStore } from "../ports/item-store.js";
import { keys } from "./keys.js";

const i18n = z.object({ en_US: z.string() }).catchall(z.string());
const taskStatus = z.enum(["pending", "running", "success", "failed"]);

const installTaskSchema = z.object({
  id: z.string(),
  created_at: z.string(),
  updated_at: z.string(),
  status: taskStatus,
  tenant_id: z.string(),
  total_plugins: z.number().int(),
  completed_plugins: z.number().int(),
  plugins: z.array(
    z.object({
      plugin_unique_identifier: uniqueIdentifierSchema,
      plugin_id: z.string(),
      status: taskStatus,
      message: z.string(),
      icon: z.string(),
      icon_dark: z.string(),
      labels: i18n,
      source: z.string(),
    }),
  ),
});

/** What the worker needs to carry a task out, stored beside the public task. */
const installJobSchema = z.object({
  kind: z.enum(["install", "upgrade"]),
  source: z.string(),
  plugins: z.array(
    z.object({
      unique_identifier: uniqueIdentifierSchema,
      meta: z.record(z.string(), z.unknown()),
      original_unique_identifier: uniqueIdentifierSchema.optional(),
    }),
  ),
});

export type InstallJob = z.infer<typeof installJobSchema>;

export const SUCCESSFUL_TASK_TTL_SECONDS = 120;

export interface StoredTask {
  task: InstallTask;
  job: InstallJob;
  version: number;
}

export class InstallTasks {
  constructor(private readonly items: ItemStore) {}

  async create(task: InstallTask, job: InstallJob): Promise<void> {
    await this.items.write([
      {
        op: "put",
        item: { ...keys.installTask(task.tenant_id, task.id), ...activeIndex(task), data: { task, job } },
        condition: { kind: "notExists" },
      },
    ]);
  }

  async get(tenantId: string, taskId: string): Promise<StoredTask | undefined> {
    const item = await this.items.get(keys.installTask(tenantId, taskId));
    if (!item) return undefined;
    const data = z.object({ task: installTaskSchema, job: installJobSchema }).parse(item.data);
    return { task: data.task as InstallTask, job: data.job, version: item.version ?? 0 };
  }

  /** Every task, of any tenant, that is not finished yet. */
  async active(): Promise<StoredTask[]> {
    const items = await this.items.query(keys.activeInstallTasks, { index: "gsi1" });
    const found = await Promise.all(
      items.map((i) =>
        this.get((i.data as { task: InstallTask }).task.tenant_id, (i.data as { task: InstallTask }).task.id),
      ),
    );
    return found.filter((t): t is StoredTask => t !== undefined && !isTerminal(t.task));
  }

  /** Newest first. */
  async list(tenantId: string): Promise<InstallTask[]> {
    const items = await this.items.query(keys.tenant(tenantId), { skPrefix: keys.installTaskPrefix, descending: true });
    return items.map((i) => installTaskSchema.parse((i.data as { task: unknown }).task) as InstallTask);
  }

  /** Saves a new state of the task; throws ConditionFailedError if someone else wrote it meanwhile. */
  async save(stored: StoredTask, task: InstallTask): Promise<StoredTask> {
    const expiresAt =
      task.status === "success" ? Math.floor(Date.now() / 1000) + SUCCESSFUL_TASK_TTL_SECONDS : undefined;
    await this.items.write([
      {
        op: "put",
        item: {
          ...keys.installTask(task.tenant_id, task.id),
          ...activeIndex(task),
          data: { task, job: stored.job },
          version: stored.version,
          expiresAt,
        },
        condition: { kind: "versionIs", version: stored.version },
      },
    ]);
    return { task, job: stored.job, version: stored.version + 1 };
  }

  async delete(tenantId: string, taskId: string): Promise<void> {
    await this.items.write([{ op: "delete", key: keys.installTask(tenantId, taskId) }]);
  }
}

/** Unfinished tasks carry the index entry; a finished task's put drops it. */
const activeIndex = (task: InstallTask) => (isTerminal(task) ? {} : keys.activeInstallTask(task.tenant_id, task.id));
