/**
 * `smoke`: the post-deploy smoke test (scripts/smoke.ts: every path Dify uses, against a running
 * daemon) with the CLI's connection options. Everything after `--` goes to the script as is.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { CliError, type ConnectionOptions, DEFAULT_URL, runCommand, withConnection } from "../daemon-client.js";

const script = fileURLToPath(new URL("../../../scripts/smoke.ts", import.meta.url));

export function smokeCommand(): Command {
  return withConnection(
    new Command("smoke").description("run the smoke test of every path Dify uses against a daemon (scripts/smoke.ts)"),
    { tenant: false },
  )
    .argument("[script-options...]", "more options for the smoke script (after --), e.g. -- --inner-api-stand-in 8089")
    .action(async (extra: string[], o: ConnectionOptions) =>
      runCommand(o.json, async () => {
        if (!existsSync(script))
          throw new CliError(`the smoke test (scripts/smoke.ts) is not part of this installation`);
        const args = [
          "--import",
          "tsx",
          script,
          "--url",
          o.url ?? DEFAULT_URL,
          ...(o.key ? ["--key", o.key] : []),
          ...(o.json ? ["--json"] : []),
          ...extra,
        ];
        return new Promise<number>((resolve, reject) => {
          const child = spawn(process.execPath, args, { stdio: "inherit" });
          child.once("error", reject);
          child.once("exit", (code) => resolve(code ?? 1));
        });
      }),
    );
}
