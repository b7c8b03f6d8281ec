/** Clearing install tasks as upstream does: a task left with only successful plugins is deleted. */
import { describe, expect, it } from "vitest";
import type { InstallTask, InstallTaskPlugin } from "../../src/domain/install-task.js";
import { TaskCleanup } from "../../src/services/task-cleanup.js";
import type { InstallTasks, StoredTask } from "../../src/stores/install-tasks.js";

const T = "tenant-1";
const plugin = (id: string, status: InstallTaskPlugin["status"]) =>
  ({ plugin_unique_identifier: id, status, message: "" }) as InstallTaskPlugin;

function taskWith(plugins: InstallTaskPlugin[]): InstallTask {
  return {
    id: "task-1",
    created_at: "2026-01-01T00:00:00Z",
    updated_at: "2026-01-01T00:00:00Z",
    status: "running",
    tenant_id: T,
    total_plugins: plugins.length,
    completed_plugins: 0,
    plugins,
  };
}

/** An in-memory task store holding one task. */
function storeWith(task: InstallTask) {
  const tasks = new Map<string, InstallTask>([[task.id, task]]);
  const store = {
    list: async () => [...tasks.values()],
    get: async (_t: string, id: string) => {
      const found = tasks.get(id);
      return found && ({ task: found } as StoredTask);
    },
    save: async (stored: StoredTask, next: InstallTask) => {
      tasks.set(next.id, next);
      return { ...stored, task: next };
    },
    delete: async (_t: string, id: string) => void tasks.delete(id),
  } satisfies Pick<InstallTasks, "list" | "get" | "save" | "delete">;
  return { tasks, cleanup: new TaskCleanup(store, () => new Date("2026-02-02T00:00:00Z")) };
}

describe("TaskCleanup", () => {
  it("keeps a task with a plugin still running, without the plugin removed", async () => {
    const { tasks, cleanup } = storeWith(
      taskWith([plugin("a", "success"), plugin("b", "running"), plugin("c", "failed")]),
    );
    await cleanup.removePlugin(T, "task-1", "c");
    expect(tasks.get("task-1")).toMatchObject({
      plugins: [{ plugin_unique_identifier: "a" }, { plugin_unique_identifier: "b" }],
      total_plugins: 2,
      completed_plugins: 1,
      updated_at: "2026-02-02T00:00:00.000Z",
    });
  });

  it("deletes a task whose remaining plugins all succeeded, or that has none left", async () => {
    const mixed = storeWith(taskWith([plugin("a", "success"), plugin("b", "failed")]));
    await mixed.cleanup.removePlugin(T, "task-1", "b");
    expect(mixed.tasks.size).toBe(0);
    const single = storeWith(taskWith([plugin("a", "running")]));
    await single.cleanup.removePlugin(T, "task-1", "a");
    expect(single.tasks.size).toBe(0);
  });

  it("treats a task already gone as nothing to do, and deletes all of a tenant's tasks", async () => {
    const { tasks, cleanup } = storeWith(taskWith([plugin("a", "running")]));
    await cleanup.removePlugin(T, "no-such-task", "a");
    expect(tasks.size).toBe(1);
    await cleanup.deleteAll(T);
    expect(tasks.size).toBe(0);
  });
});
