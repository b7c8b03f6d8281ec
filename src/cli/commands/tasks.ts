/** `tasks`: a tenant's install tasks, newest first, with each plugin's status and message. */
import { Command } from "commander";
import { type ConnectionOptions, DaemonClient, print, runCommand, table, withConnection } from "../daemon-client.js";

interface Task {
  id: string;
  status: string;
  created_at: string;
  plugins: Array<{ plugin_unique_identifier: string; status: string; message: string }>;
}

export function tasksCommand(): Command {
  return withConnection(new Command("tasks").description("list a tenant's install tasks")).action(
    async (o: ConnectionOptions) =>
      runCommand(o.json, async () => {
        const client = new DaemonClient(o);
        const tasks = await client.call<Task[]>(client.tenantPath(o.tenant, "install/tasks?page=1&page_size=256"));
        if (o.json) return print(JSON.stringify(tasks, null, 2));
        const rows = tasks.flatMap((t) =>
          t.plugins.map((p) => ({
            task: t.id,
            created: t.created_at.slice(0, 19),
            status: p.status,
            plugin: p.plugin_unique_identifier.split("@")[0] ?? "",
            message: p.message.slice(0, 80),
          })),
        );
        print(table(rows, ["task", "created", "status", "plugin", "message"]));
      }),
  );
}
