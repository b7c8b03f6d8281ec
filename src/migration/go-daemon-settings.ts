/**
 * The Go daemon's own settings, read under its variable names and with its defaults, so the
 * migration can be pointed at the same environment (or .env file) the Go daemon ran with.
 * Names and defaults: langgenius/dify-plugin-daemon internal/types/app/config.go and default.go
 * (commit bdb5642a19009c944b78eca12f3d176801a4a8be); storage types: langgenius/dify-cloud-kit oss/oss.go.
 */
import { z } from "zod";
import type { GoStorageLayout } from "./go-storage-layout.js";

const flag = (fallback: boolean) =>
  z
    .string()
    .optional()
    .transform((v) => (v === undefined || v === "" ? fallback : ["1", "true", "yes", "on"].includes(v.toLowerCase())));
const withDefault = (fallback: string) =>
  z
    .string()
    .optional()
    .transform((v) => (v === undefined || v === "" ? fallback : v));

const goEnvSchema = z.object({
  DB_TYPE: withDefault("postgresql"),
  DB_HOST: withDefault("localhost"),
  DB_PORT: withDefault("5432"),
  DB_USERNAME: withDefault("postgres"),
  DB_PASSWORD: withDefault(""),
  DB_DATABASE: withDefault("dify_plugin"),
  /** Dify's docker/.env names the plugin daemon's database here (its compose passes it as DB_DATABASE). */
  DB_PLUGIN_DATABASE: withDefault(""),
  DB_SSL_MODE: withDefault("disable"),
  PLUGIN_STORAGE_TYPE: withDefault("local"),
  PLUGIN_STORAGE_LOCAL_ROOT: withDefault("storage"),
  PLUGIN_STORAGE_OSS_BUCKET: withDefault(""),
  PLUGIN_INSTALLED_PATH: withDefault("plugin"),
  PLUGIN_PACKAGE_CACHE_PATH: withDefault("plugin_packages"),
  PERSISTENCE_STORAGE_PATH: withDefault("persistence"),
  S3_ENDPOINT: withDefault(""),
  S3_USE_PATH_STYLE: flag(true),
  AWS_ACCESS_KEY: withDefault(""),
  AWS_SECRET_KEY: withDefault(""),
  AWS_REGION: withDefault(""),
});

export type GoStorageSettings =
  | { type: "local"; root: string }
  | {
      type: "aws_s3";
      bucket: string;
      endpoint: string | undefined;
      pathStyle: boolean;
      region: string | undefined;
      credentials: { accessKeyId: string; secretAccessKey: string } | undefined;
    };

export interface GoDaemonSettings {
  /** A connection string for the Go daemon's database (PostgreSQL). */
  databaseUrl: string;
  storage: GoStorageSettings;
  layout: GoStorageLayout;
}

/** Command-line values, which win over the environment. */
export interface GoSettingOverrides {
  databaseUrl?: string;
  storageRoot?: string;
  storageBucket?: string;
  installedPath?: string;
  packageCachePath?: string;
  persistencePath?: string;
}

export class SettingsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SettingsError";
  }
}

export function goDaemonSettings(
  env: Record<string, string | undefined>,
  overrides: GoSettingOverrides = {},
): GoDaemonSettings {
  const e = goEnvSchema.parse(env);
  const dbType = e.DB_TYPE.toLowerCase();
  if (!overrides.databaseUrl && dbType !== "postgresql" && dbType !== "pgbouncer") {
    throw new SettingsError(
      `DB_TYPE=${e.DB_TYPE} is not supported: only PostgreSQL databases can be migrated (MySQL users: see docs/migrate-from-go-daemon.md)`,
    );
  }
  const databaseUrl = overrides.databaseUrl ?? postgresUrl(e);

  // A bucket given on the command line means S3 storage, a root means a local directory.
  const storageType = overrides.storageBucket ? "aws_s3" : overrides.storageRoot ? "local" : e.PLUGIN_STORAGE_TYPE;
  let storage: GoStorageSettings;
  if (storageType === "local") {
    storage = { type: "local", root: overrides.storageRoot ?? e.PLUGIN_STORAGE_LOCAL_ROOT };
  } else if (storageType === "aws_s3") {
    const bucket = overrides.storageBucket ?? e.PLUGIN_STORAGE_OSS_BUCKET;
    if (!bucket)
      throw new SettingsError("PLUGIN_STORAGE_TYPE=aws_s3 needs PLUGIN_STORAGE_OSS_BUCKET (or --storage-bucket)");
    storage = {
      type: "aws_s3",
      bucket,
      endpoint: e.S3_ENDPOINT || undefined,
      pathStyle: e.S3_USE_PATH_STYLE,
      region: e.AWS_REGION || undefined,
      credentials:
        e.AWS_ACCESS_KEY && e.AWS_SECRET_KEY
          ? { accessKeyId: e.AWS_ACCESS_KEY, secretAccessKey: e.AWS_SECRET_KEY }
          : undefined,
    };
  } else {
    throw new SettingsError(
      `PLUGIN_STORAGE_TYPE=${storageType} is not supported: copy the storage into a local directory (--storage-root) or an S3 bucket (--storage-bucket) first`,
    );
  }
  return {
    databaseUrl,
    storage,
    layout: {
      installedPath: overrides.installedPath ?? e.PLUGIN_INSTALLED_PATH,
      packageCachePath: overrides.packageCachePath ?? e.PLUGIN_PACKAGE_CACHE_PATH,
      persistencePath: overrides.persistencePath ?? e.PERSISTENCE_STORAGE_PATH,
    },
  };
}

function postgresUrl(e: z.infer<typeof goEnvSchema>): string {
  const url = new URL("postgres://localhost");
  url.hostname = e.DB_HOST;
  url.port = e.DB_PORT;
  url.username = e.DB_USERNAME;
  url.password = e.DB_PASSWORD;
  url.pathname = `/${e.DB_PLUGIN_DATABASE || e.DB_DATABASE}`;
  if (e.DB_SSL_MODE === "require") url.searchParams.set("sslmode", "require");
  return url.toString();
}

/** The password replaced, for messages and reports. */
export function redactedUrl(databaseUrl: string): string {
  try {
    const url = new URL(databaseUrl);
    if (url.password) url.password = "***";
    return url.toString();
  } catch {
    return "(unparsable database URL)";
  }
}

/**
 * Reads a dotenv-style file (`KEY=value`, `#` comments, optional `export `, single or double
 * quotes), as Dify's and the Go daemon's `.env` files are written.
 */
export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.trim();
    if (line === "" || line.startsWith("#")) continue;
    const match = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!match) continue;
    let value = match[2]!;
    const quote = value[0];
    if ((quote === '"' || quote === "'") && value.endsWith(quote) && value.length >= 2) value = value.slice(1, -1);
    else value = value.replace(/\s+#.*$/, "");
    out[match[1]!] = value;
  }
  return out;
}
