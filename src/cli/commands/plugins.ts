/** `plugins list | install | uninstall`: a tenant's plugins on a daemon. */
import { Command } from "commander";
import { pluginsInstallCommand } from "./plugins-install.js";
import { pluginsListCommand } from "./plugins-list.js";
import { pluginsUninstallCommand } from "./plugins-uninstall.js";

export function pluginsCommand(): Command {
  return new Command("plugins")
    .description("list, install and uninstall a tenant's plugins on a daemon (local or --url)")
    .addCommand(pluginsListCommand())
    .addCommand(pluginsInstallCommand())
    .addCommand(pluginsUninstallCommand());
}
