/** `upgrade-check`: runs the auto-upgrade check for a tenant now and prints what it decided. */
import { Command } from "commander";
import { type ConnectionOptions, DaemonClient, print, runCommand, table, withConnection } from "../daemon-client.js";

interface LastCheck {
  status: string;
  message: string;
  strategy_setting: string;
  upgrades: Array<{ plugin_id: string; from: string; to: string; task_id: string }>;
  failures: Array<{ plugin_id: string; message: string }>;
  skipped: Array<{ plugin_id: string; reason: string; latest?: string }>;
}

export function upgradeCheckCommand(): Command {
  return withConnection(
    new Command("upgrade-check").description(
      "check a tenant's plugins against the marketplace now and start the upgrades its strategy allows",
    ),
  ).action(async (o: ConnectionOptions) =>
    runCommand(o.json, async () => {
      const client = new DaemonClient(o);
      const tenant = o.tenant;
      const check = await client.call<LastCheck>(client.tenantPath(tenant, "auto-upgrade/check-now"), { json: {} });
      if (o.json) return print(JSON.stringify(check, null, 2));
      print(`${check.status}: ${check.message} (strategy ${check.strategy_setting})`);
      const rows = [
        ...check.upgrades.map((u) => ({
          plugin: u.plugin_id,
          decision: "upgrading",
          detail: `${u.from.split("@")[0]} -> ${u.to.split("@")[0]} (task ${u.task_id})`,
        })),
        ...check.failures.map((f) => ({ plugin: f.plugin_id, decision: "failed", detail: f.message })),
        ...check.skipped.map((s) => ({ plugin: s.plugin_id, decision: "skipped", detail: s.reason })),
      ];
      if (rows.length > 0) print(table(rows, ["plugin", "decision", "detail"]));
    }),
  );
}
