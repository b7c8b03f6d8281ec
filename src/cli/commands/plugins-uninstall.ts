/** `plugins uninstall <plugin>`: removes a tenant's installation, named by plugin id, unique identifier or installation id. */
import { Command } from "commander";
import { CliError, type ConnectionOptions, DaemonClient, print, runCommand, withConnection } from "../daemon-client.js";
import { installedPlugins } from "./plugins-list.js";

export function pluginsUninstallCommand(): Command {
  return withConnection(
    new Command("uninstall")
      .description("uninstall a plugin for a tenant")
      .argument("<plugin>", "plugin id (author/name), unique identifier or installation id"),
  ).action(async (plugin: string, o: ConnectionOptions) =>
    runCommand(o.json, async () => {
      const client = new DaemonClient(o);
      const installed = await installedPlugins(client, o.tenant);
      const match = installed.find(
        (r) => r.installation_id === plugin || r.plugin_id === plugin || r.plugin_unique_identifier === plugin,
      );
      if (!match)
        throw new CliError(`no plugin ${plugin} is installed for tenant ${o.tenant}; plugins list shows what is`);
      await client.call(client.tenantPath(o.tenant, "uninstall"), {
        json: { plugin_installation_id: match.installation_id },
      });
      if (o.json)
        return print(
          JSON.stringify({ uninstalled: match.plugin_unique_identifier, installation_id: match.installation_id }),
        );
      print(`uninstalled ${match.plugin_unique_identifier}`);
    }),
  );
}
