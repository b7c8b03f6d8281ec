/**
 * `logs <plugin>`: a plugin's own output. Local daemon: the plugin's stderr file in its
 * directory under DATA_DIR/plugins (the newest version installed, or the one named). AWS: the
 * plugin function's CloudWatch log group, through `aws logs tail` (the AWS CLI).
 */
import { spawn } from "node:child_process";
import {
  closeSync,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  statSync,
  unwatchFile,
  watchFile,
} from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { Command, Option } from "commander";
import { pluginFunctionName } from "../../adapters/aws/lambda-function-spec.js";
import { pluginDirectory } from "../../adapters/local/plugin-environment.js";
import { PLUGIN_LOG_FILE, pluginLogPath } from "../../adapters/local/plugin-log.js";
import { isUniqueIdentifier, parseUniqueIdentifier } from "../../domain/identifier.js";
import { CliError, type ConnectionOptions, DaemonClient, print, runCommand, withConnection } from "../daemon-client.js";
import { installedPlugins } from "./plugins-list.js";

interface LogsOptions extends ConnectionOptions {
  target: "local" | "aws";
  dataDir?: string;
  functionPrefix: string;
  lines: string;
  since: string;
  follow?: boolean;
}

export function logsCommand(): Command {
  return withConnection(
    new Command("logs")
      .description("print a plugin's logs: its stderr on the local daemon, its function's CloudWatch logs on AWS")
      .argument("<plugin>", "plugin id (author/name) or unique identifier")
      .addOption(
        new Option("--target <backend>", "where the plugin runs")
          .choices(["local", "aws"])
          .env("STORE_BACKEND")
          .default("local"),
      )
      .addOption(new Option("--data-dir <dir>", "local: the daemon's DATA_DIR").env("DATA_DIR"))
      .addOption(
        new Option("--function-prefix <prefix>", "aws: the stack's plugin function prefix")
          .env("PLUGIN_FUNCTION_PREFIX")
          .default("dify-plugin-"),
      )
      .option("-n, --lines <n>", "local: how many of the last lines", "100")
      .option("--since <duration>", "aws: how far back (aws logs tail --since)", "1h")
      .option("-f, --follow", "keep printing new lines"),
  ).action(async (plugin: string, o: LogsOptions) =>
    runCommand(o.json, () => (o.target === "aws" ? awsLogs(plugin, o) : localLogs(plugin, o))),
  );
}

async function localLogs(plugin: string, o: LogsOptions): Promise<number> {
  const workDir = join(o.dataDir ?? join(homedir(), ".local", "share", "dify-plugin-daemon-aws"), "plugins");
  const path = localLogFile(workDir, plugin);
  const text = readFileSync(path, "utf8");
  const lines = text.split("\n").filter(Boolean).slice(-Number(o.lines));
  if (o.json) print(JSON.stringify({ file: path, lines }, null, 2));
  else if (lines.length > 0) print(lines.join("\n"));
  if (!o.follow) return 0;
  let offset = statSync(path).size;
  watchFile(path, { interval: 500 }, (current) => {
    if (current.size < offset) offset = 0;
    const fd = openSync(path, "r");
    const chunk = Buffer.alloc(current.size - offset);
    readSync(fd, chunk, 0, chunk.length, offset);
    closeSync(fd);
    offset = current.size;
    process.stdout.write(chunk);
  });
  await new Promise<void>((resolve) => process.once("SIGINT", () => resolve()));
  unwatchFile(path);
  return 0;
}

/** The log of the version named, or of the most recently active version of the plugin id. */
function localLogFile(workDir: string, plugin: string): string {
  if (isUniqueIdentifier(plugin)) {
    const path = pluginLogPath(pluginDirectory(workDir, plugin));
    if (!existsSync(path))
      throw new CliError(`no log for ${plugin} under ${workDir}: is it installed on this daemon, and has it started?`);
    return path;
  }
  const [author, name] = plugin.split("/");
  if (!author || !name) throw new CliError(`${plugin} is neither a plugin id (author/name) nor a unique identifier`);
  const authorDir = join(workDir, author);
  const candidates = existsSync(authorDir)
    ? readdirSync(authorDir)
        .filter((entry) => entry.startsWith(`${name}-`) && existsSync(join(authorDir, entry, PLUGIN_LOG_FILE)))
        .map((entry) => join(authorDir, entry, PLUGIN_LOG_FILE))
    : [];
  if (candidates.length === 0)
    throw new CliError(
      `no log for ${plugin} under ${workDir} (--data-dir / DATA_DIR): is it installed on this daemon, and has it started?`,
    );
  return candidates.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0]!;
}

async function awsLogs(plugin: string, o: LogsOptions): Promise<number> {
  let uid = plugin;
  if (!isUniqueIdentifier(plugin)) {
    const installed = await installedPlugins(new DaemonClient(o), o.tenant);
    const match = installed.find((r) => r.plugin_id === plugin);
    if (!match)
      throw new CliError(`no plugin ${plugin} is installed for tenant ${o.tenant}; give its unique identifier instead`);
    uid = match.plugin_unique_identifier;
  }
  parseUniqueIdentifier(uid);
  const group = `/aws/lambda/${pluginFunctionName(o.functionPrefix, uid)}`;
  const args = [
    "logs",
    "tail",
    group,
    "--since",
    o.since,
    ...(o.follow ? ["--follow"] : []),
    ...(o.json ? ["--format", "json"] : []),
  ];
  return new Promise<number>((resolve, reject) => {
    const child = spawn("aws", args, { stdio: "inherit" });
    child.once("error", (err: NodeJS.ErrnoException) =>
      reject(
        new CliError(
          err.code === "ENOENT"
            ? `the AWS CLI (aws) is not installed; the plugin's logs are in CloudWatch log group ${group}`
            : err.message,
        ),
      ),
    );
    child.once("exit", (code) => resolve(code ?? 1));
  });
}
