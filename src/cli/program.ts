/** Builds the CLI from its command modules; adding a command is adding it to ./commands/index.ts. */
import { Command } from "commander";
import { commands } from "./commands/index.js";

export function buildProgram(): Command {
  const program = new Command("dify-plugin-daemon-aws")
    .description("Operator commands for the Dify plugin daemon (local data directory or AWS stack)")
    .showHelpAfterError()
    .enablePositionalOptions();
  for (const command of commands) program.addCommand(command());
  return program;
}
