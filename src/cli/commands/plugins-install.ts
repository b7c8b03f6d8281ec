/**
 * `plugins install <file|identifier>`: uploads a .difypkg (or names a marketplace identifier),
 * starts the install task and shows its progress until it ends (ora spinner on a terminal, one
 * line per change otherwise). Exit status 1 when the install failed.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { Command } from "commander";
import ora from "ora";
import { isUniqueIdentifier } from "../../domain/identifier.js";
import { CliError, type ConnectionOptions, DaemonClient, print, runCommand, withConnection } from "../daemon-client.js";

interface InstallOptions extends ConnectionOptions {
  verifySignature?: boolean;
  timeout: string;
}

interface Task {
  id: string;
  status: "pending" | "running" | "success" | "failed";
  plugins: Array<{ plugin_unique_identifier: string; status: string; message: string }>;
}

export function pluginsInstallCommand(): Command {
  return withConnection(
    new Command("install")
      .description(
        "install a plugin from a .difypkg file or a marketplace identifier (author/name:version@checksum) and follow the task",
      )
      .argument("<file|identifier>", "a .difypkg file, or a plugin unique identifier to download from the marketplace")
      .option("--verify-signature", "refuse a package without a valid signature, whatever the daemon's default")
      .option("--timeout <minutes>", "give up following the task after this long", "30"),
  ).action(async (target: string, o: InstallOptions) => runCommand(o.json, () => install(target, o)));
}

async function install(target: string, o: InstallOptions): Promise<number> {
  const client = new DaemonClient(o);
  const spinner = ora({
    text: `installing ${target}`,
    stream: process.stderr,
    isEnabled: !o.json && process.stderr.isTTY === true,
  });
  // Without a terminal the spinner draws nothing: each change is one line instead.
  let lastLine = "";
  const show = (text: string) => {
    if (o.json) return;
    if (spinner.isEnabled) spinner.text = text;
    else if (text !== lastLine) process.stderr.write(`${(lastLine = text)}\n`);
  };
  if (spinner.isEnabled) spinner.start();
  try {
    const { uid, source } = await identify(client, target, o, show);
    show(`starting the install of ${uid}`);
    const started = await client.call<{ all_installed: boolean; task_id: string }>(
      client.tenantPath(o.tenant, "install/identifiers"),
      {
        json: { plugin_unique_identifiers: [uid], source, metas: [{}] },
      },
    );
    if (started.all_installed) {
      if (spinner.isEnabled) spinner.succeed(`${uid} is already installed`);
      else show(`${uid} is already installed`);
      if (o.json) print(JSON.stringify({ unique_identifier: uid, status: "success", already_installed: true }));
      return 0;
    }
    const task = await follow(client, o, started.task_id, Number(o.timeout) * 60_000, show);
    const plugin = task.plugins[0];
    if (o.json)
      print(
        JSON.stringify(
          { unique_identifier: uid, task_id: task.id, status: task.status, message: plugin?.message ?? "" },
          null,
          2,
        ),
      );
    if (task.status === "success") {
      if (spinner.isEnabled) spinner.succeed(`installed ${uid}`);
      else show(`installed ${uid}`);
      return 0;
    }
    const failure = `install of ${uid} failed: ${plugin?.message ?? "no message"}`;
    if (spinner.isEnabled) spinner.fail(failure);
    else if (!o.json) process.stderr.write(`${failure}\n`);
    return 1;
  } catch (err) {
    spinner.stop();
    throw err;
  }
}

async function identify(
  client: DaemonClient,
  target: string,
  o: InstallOptions,
  show: (t: string) => void,
): Promise<{ uid: string; source: string }> {
  if (existsSync(target)) {
    const bytes = await readFile(target);
    show(`uploading ${basename(target)} (${Math.ceil(bytes.length / 1024)} KiB)`);
    const form = new FormData();
    form.set("dify_pkg", new Blob([bytes]), basename(target));
    if (o.verifySignature) form.set("verify_signature", "true");
    const decoded = await client.call<{ unique_identifier: string }>(
      client.tenantPath(o.tenant, "install/upload/package"),
      { method: "POST", body: form },
    );
    return { uid: decoded.unique_identifier, source: "package" };
  }
  if (isUniqueIdentifier(target)) return { uid: target, source: "marketplace" };
  throw new CliError(`${target} is neither a file nor a plugin unique identifier (author/name:version@checksum)`);
}

async function follow(
  client: DaemonClient,
  o: InstallOptions,
  taskId: string,
  timeoutMs: number,
  show: (t: string) => void,
): Promise<Task> {
  const deadline = Date.now() + timeoutMs;
  const started = Date.now();
  for (;;) {
    const task = await client.call<Task>(client.tenantPath(o.tenant, `install/tasks/${encodeURIComponent(taskId)}`));
    const plugin = task.plugins[0];
    if (task.status === "success" || task.status === "failed") return task;
    const seconds = Math.round((Date.now() - started) / 1000);
    show(`[${seconds}s] ${plugin?.status ?? task.status}: ${plugin?.message || "waiting for the installer"}`);
    if (Date.now() > deadline)
      throw new CliError(
        `task ${taskId} is still ${task.status} after ${o.timeout} minutes; follow it with: tasks --tenant ${o.tenant}`,
      );
    await new Promise((r) => setTimeout(r, 500));
  }
}
