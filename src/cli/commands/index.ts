/** Every top-level command of the CLI, one module each. */
import type { Command } from "commander";
import { migrateCommand } from "./migrate.js";

export const commands: ReadonlyArray<() => Command> = [migrateCommand];
