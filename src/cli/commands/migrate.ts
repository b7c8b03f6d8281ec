/**
 * `migrate from-go`: moves an upstream Go daemon's plugins, endpoints and plugin storage into
 * this daemon's stores (docs/migrate-from-go-daemon.md). Progress goes to stderr, the report to
 * stdout (JSON with --json). Exit status: 0 done, 1 stopped on an error (the message names the
 * row), 2 done but some runtimes could not be prepared.
 */
import { readFileSync } from "node:fs";
import { Command, Option } from "commander";

interface FromGoOptions {
  databaseUrl?: string;
  goEnv?: string;
  storageRoot?: string;
  storageBucket?: string;
  installedPath?: string;
  packageCachePath?: string;
  persistencePath?: string;
  target?: "local" | "aws";
  dataDir?: string;
  table?: string;
  bucket?: string;
  prepare?: boolean;
  dryRun?: boolean;
  json?: boolean;
}

export function migrateCommand(): Command {
  const migrate = new Command("migrate").description("bring state over from another plugin daemon");
  migrate
    .command("from-go")
    .description(
      "copy the Go daemon's installed plugins, endpoints and plugin storage into this daemon (reads the Go daemon's database read-only; stop it first)",
    )
    .option("--database-url <url>", "the Go daemon's PostgreSQL database (default: built from its DB_* variables)")
    .option("--go-env <file>", "read the Go daemon's settings (DB_*, PLUGIN_STORAGE_*, ...) from this env file")
    .option("--storage-root <dir>", "its local plugin storage directory (PLUGIN_STORAGE_LOCAL_ROOT)")
    .option("--storage-bucket <bucket>", "its S3 plugin storage bucket (PLUGIN_STORAGE_OSS_BUCKET)")
    .option("--installed-path <path>", "PLUGIN_INSTALLED_PATH inside the storage (default plugin)")
    .option("--package-cache-path <path>", "PLUGIN_PACKAGE_CACHE_PATH inside the storage (default plugin_packages)")
    .option("--persistence-path <path>", "PERSISTENCE_STORAGE_PATH inside the storage (default persistence)")
    .addOption(
      new Option("--target <backend>", "where to write (default STORE_BACKEND, else local)").choices(["local", "aws"]),
    )
    .option("--data-dir <dir>", "local target: the daemon's DATA_DIR")
    .option("--table <name>", "AWS target: the stack's METADATA_TABLE")
    .option("--bucket <name>", "AWS target: the stack's PACKAGE_BUCKET")
    .option("--prepare", "prepare each plugin's runtime after migrating, as an install does")
    .option("--dry-run", "check everything and print what would be done, writing nothing")
    .option("--json", "print the report as JSON")
    .action(async (options: FromGoOptions) => {
      process.exitCode = await fromGo(options);
    });
  return migrate;
}

async function fromGo(options: FromGoOptions): Promise<number> {
  const [
    { goDaemonSettings, parseEnvFile },
    { loadConfig },
    { openTarget },
    { openSources },
    { migrateFromGo },
    { formatReport },
  ] = await Promise.all([
    import("../../migration/go-daemon-settings.js"),
    import("../../config.js"),
    import("../../migration/target.js"),
    import("../../migration/sources/open.js"),
    import("../../migration/migrate-from-go.js"),
    import("../../migration/report.js"),
  ]);
  const fail = (message: string) => {
    process.stderr.write(`error: ${message}\n`);
    if (options.json) process.stdout.write(`${JSON.stringify({ error: message })}\n`);
    return 1;
  };

  let sources: Awaited<ReturnType<typeof openSources>> | undefined;
  let target: Awaited<ReturnType<typeof openTarget>> | undefined;
  try {
    const goEnv = { ...process.env, ...(options.goEnv ? parseEnvFile(readFileSync(options.goEnv, "utf8")) : {}) };
    const settings = goDaemonSettings(goEnv, options);
    const config = loadConfig({
      ...process.env,
      ...(options.target && { STORE_BACKEND: options.target }),
      ...(options.dataDir && { DATA_DIR: options.dataDir }),
      ...(options.table && { METADATA_TABLE: options.table }),
      ...(options.bucket && { PACKAGE_BUCKET: options.bucket }),
    });
    sources = await openSources(settings);
    target = await openTarget(config, { dryRun: options.dryRun ?? false });
    const progress = progressPrinter();
    progress.line(`reading ${sources.database.description} and ${sources.storage.description}`);
    progress.line(`writing to ${target.description}${options.dryRun ? " (dry run: nothing is written)" : ""}`);
    const report = await migrateFromGo(sources, target, {
      dryRun: options.dryRun ?? false,
      prepare: options.prepare ?? false,
      progress: progress.event,
    });
    process.stdout.write(
      options.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatReport(report, options.prepare ?? false)}\n`,
    );
    return report.runtimes.some((r) => r.error) ? 2 : 0;
  } catch (err) {
    return fail(err instanceof Error ? err.message : String(err));
  } finally {
    await target?.close();
    await sources?.database.close();
  }
}

/** One stderr line per item; a runtime's install output at most once a second. */
function progressPrinter() {
  let lastDetailAt = 0;
  const line = (text: string) => process.stderr.write(`${text}\n`);
  return {
    line,
    event(e: { step: string; index: number; total: number; item: string; outcome: string }) {
      const detail = e.step === "preparing runtimes" && e.outcome !== "preparing";
      if (detail) {
        if (Date.now() - lastDetailAt < 1000) return;
        lastDetailAt = Date.now();
      }
      line(`[${e.step} ${e.index}/${e.total}] ${e.item}: ${e.outcome}`);
    },
  };
}
