/**
 * The install task state machine. A task installs (or upgrades) one or more plugins; each plugin
 * goes pending → running → success | failed, and the task follows its plugins:
 * any failure fails the task, all successes make it a success. Dify polls the task until it
 * is terminal, so a task must never stay `running` after its last plugin settled.
 */
import type { PluginUniqueIdentifier } from "./identifier.js";

export type TaskStatus = "pending" | "running" | "success" | "failed";

export interface I18nText {
  en_US: string;
  zh_Hans?: string;
  ja_JP?: string;
  pt_BR?: string;
  [lang: string]: string | undefined;
}

export interface InstallTaskPlugin {
  plugin_unique_identifier: PluginUniqueIdentifier;
  plugin_id: string;
  status: TaskStatus;
  message: string;
  icon: string;
  icon_dark: string;
  labels: I18nText;
  source: string;
}

export interface InstallTask {
  id: string;
  created_at: string;
  updated_at: string;
  status: TaskStatus;
  tenant_id: string;
  total_plugins: number;
  completed_plugins: number;
  plugins: InstallTaskPlugin[];
}

/** Upstream keeps task messages short: first and last 512 characters of long installer output. */
export function clipMessage(message: string): string {
  return message.length > 1024 ? `${message.slice(0, 512)}...${message.slice(-512)}` : message;
}

export function newInstallTask(
  id: string,
  tenantId: string,
  plugins: Array<Omit<InstallTaskPlugin, "status" | "message">>,
  now: Date,
): InstallTask {
  return {
    id,
    created_at: now.toISOString(),
    updated_at: now.toISOString(),
    // Upstream creates tasks directly as running: work starts as soon as the call returns.
    status: "running",
    tenant_id: tenantId,
    total_plugins: plugins.length,
    completed_plugins: 0,
    plugins: plugins.map((p) => ({ ...p, status: "pending", message: "" })),
  };
}

/** Sets one plugin's status and message and derives the task's status and totals. */
export function updatePlugin(
  task: InstallTask,
  uniqueIdentifier: string,
  status: TaskStatus,
  message: string,
  now: Date,
): InstallTask {
  const plugins = task.plugins.map((p) =>
    p.plugin_unique_identifier === uniqueIdentifier ? { ...p, status, message: clipMessage(message) } : p,
  );
  const completed = plugins.filter((p) => p.status === "success").length;
  const taskStatus: TaskStatus = plugins.some((p) => p.status === "failed")
    ? "failed"
    : completed === plugins.length
      ? "success"
      : "running";
  return { ...task, plugins, completed_plugins: completed, status: taskStatus, updated_at: now.toISOString() };
}

export const isTerminal = (task: InstallTask): boolean => task.status === "success" || task.status === "failed";

/** Removes one plugin's entry; undefined when the task has none left (and should be deleted). */
export function withoutPlugin(task: InstallTask, uniqueIdentifier: string, now: Date): InstallTask | undefined {
  const plugins = task.plugins.filter((p) => p.plugin_unique_identifier !== uniqueIdentifier);
  if (plugins.length === 0) return undefined;
  return {
    ...task,
    plugins,
    total_plugins: plugins.length,
    completed_plugins: plugins.filter((p) => p.status === "success").length,
    updated_at: now.toISOString(),
  };
}

/** Fails every plugin of the task that has not settled, with `message` (an interrupted or overdue install). */
export function abandon(task: InstallTask, message: string, now: Date): InstallTask {
  return task.plugins
    .filter((p) => p.status === "pending" || p.status === "running")
    .reduce((t, p) => updatePlugin(t, p.plugin_unique_identifier, "failed", message, now), task);
}

/** A task still unfinished this long after it was created will not finish: its worker is gone. */
export function isOverdue(task: InstallTask, now: Date, limitMs: number): boolean {
  return !isTerminal(task) && now.getTime() - Date.parse(task.created_at) > limitMs;
}
