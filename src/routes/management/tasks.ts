/** Install tasks: Dify polls them while plugins install and clears them off its list afterwards. */
import { badRequest, internalError } from "../../domain/errors.js";
import { isUniqueIdentifier } from "../../domain/identifier.js";
import { bind } from "../../http/daemon-request.js";
import { ok } from "../../http/daemon-response.js";
import type { Route } from "../../http/router.js";
import type { Installer } from "../../services/installer.js";
import type { TaskCleanup } from "../../services/task-cleanup.js";
import { M, page, paged, tenantOf } from "./common.js";

export interface TaskRouteDeps {
  installer: Installer;
  taskCleanup: TaskCleanup;
}

export function taskRoutes({ installer, taskCleanup }: TaskRouteDeps): Route[] {
  return [
    {
      method: "GET",
      pattern: `${M}/install/tasks`,
      handler: async (req) => ok(paged(await installer.tasks(tenantOf(req)), bind(req, page))),
    },
    {
      method: "POST",
      pattern: `${M}/install/tasks/delete_all`,
      handler: async (req) => {
        await taskCleanup.deleteAll(tenantOf(req));
        return ok(true);
      },
    },
    {
      method: "GET",
      pattern: `${M}/install/tasks/:task_id`,
      handler: async (req) => {
        const stored = await installer.task(tenantOf(req), req.params.task_id ?? "");
        // Upstream wraps the database's "record not found" in an internal error (-500); Dify keys
        // on the message.
        if (!stored) throw internalError("record not found");
        return ok(stored.task);
      },
    },
    {
      method: "POST",
      pattern: `${M}/install/tasks/:task_id/delete`,
      handler: async (req) => {
        await taskCleanup.delete(tenantOf(req), req.params.task_id ?? "");
        return ok(true);
      },
    },
    {
      method: "POST",
      pattern: `${M}/install/tasks/:task_id/delete/*identifier`,
      handler: async (req) => {
        // Upstream validates the identifier before looking at the task (HTTP 200, -400).
        const identifier = (req.params.identifier ?? "").replace(/^\/+/, "");
        if (!isUniqueIdentifier(identifier)) throw badRequest(`plugin_unique_identifier is not valid: ${identifier}`);
        await taskCleanup.removePlugin(tenantOf(req), req.params.task_id ?? "", identifier);
        return ok(true);
      },
    },
  ];
}
