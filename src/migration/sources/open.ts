/** Opens the Go daemon's database and plugin storage its settings point at. */
import type { GoDaemonSettings } from "../go-daemon-settings.js";
import type { MigrationSources } from "../migrate-from-go.js";
import { LocalGoStorage } from "./local-storage.js";

export async function openSources(settings: GoDaemonSettings): Promise<MigrationSources> {
  const { PostgresGoDatabase } = await import("./postgres-database.js");
  const storage =
    settings.storage.type === "local"
      ? new LocalGoStorage(settings.storage.root)
      : new (await import("./s3-storage.js")).S3GoStorage(settings.storage);
  return { database: new PostgresGoDatabase(settings.databaseUrl), storage, layout: settings.layout };
}
