/** Every top-level command of the CLI, one module each. */
import type { Command } from "commander";
import { logsCommand } from "./logs.js";
import { migrateCommand } from "./migrate.js";
import { pluginsCommand } from "./plugins.js";
import { smokeCommand } from "./smoke.js";
import { tasksCommand } from "./tasks.js";
import { upgradeCheckCommand } from "./upgrade-check.js";
import { verifyCommand } from "./verify.js";

export const commands: ReadonlyArray<() => Command> = [
  pluginsCommand,
  tasksCommand,
  logsCommand,
  upgradeCheckCommand,
  verifyCommand,
  smokeCommand,
  migrateCommand,
];
