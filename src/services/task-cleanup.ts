/**
 * Dify clearing install tasks off its task list: all of a tenant's, one, or one plugin of a task.
 * Upstream's rules (internal/service/install_task_service.go): a task already gone is nothing to
 * do, and a task whose remaining plugins all succeeded is deleted rather than kept.
 */
import { withoutPlugin } from "../domain/install-task.js";
import type { InstallTasks } from "../stores/install-tasks.js";

export class TaskCleanup {
  constructor(
    private readonly tasks: Pick<InstallTasks, "list" | "get" | "save" | "delete">,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async deleteAll(tenantId: string): Promise<void> {
    for (const task of await this.tasks.list(tenantId)) await this.tasks.delete(tenantId, task.id);
  }

  delete(tenantId: string, taskId: string): Promise<void> {
    return this.tasks.delete(tenantId, taskId);
  }

  /** Takes one plugin off a task. */
  async removePlugin(tenantId: string, taskId: string, uniqueIdentifier: string): Promise<void> {
    const stored = await this.tasks.get(tenantId, taskId);
    if (!stored) return;
    const rest = withoutPlugin(stored.task, uniqueIdentifier, this.now());
    if (!rest || rest.plugins.every((p) => p.status === "success")) await this.tasks.delete(tenantId, stored.task.id);
    else await this.tasks.save(stored, rest);
  }
}
