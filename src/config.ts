/**
 * Daemon configuration from the environment, validated once. Names follow the upstream daemon
 * where one exists (SERVER_KEY, MAX_PLUGIN_PACKAGE_SIZE, FORCE_VERIFYING_SIGNATURE, ...), so a
 * docker-compose written for the Go daemon keeps working. README's configuration table lists them.
 */
import { homedir } from "node:os";
import { join } from "node:path";
import { z } from "zod";

const bool = (fallback: boolean) =>
  z
    .string()
    .optional()
    .transform((v) => (v === undefined || v === "" ? fallback : ["1", "true", "yes", "on"].includes(v.toLowerCase())));
const int = (fallback: number) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === "") return fallback;
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) {
        ctx.addIssue({ code: "custom", message: `expected a non-negative integer, got "${v}"` });
        return z.NEVER;
      }
      return n;
    });
const list = z
  .string()
  .optional()
  .transform((v) =>
    (v ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
  );

/** The log levels LOG_LEVEL names; any other value is info. */
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
export type ConfiguredLogLevel = (typeof LOG_LEVELS)[number];

/** LOG_LEVEL as given (any case), or info when it names no level. */
export function logLevelOf(value: string | undefined): ConfiguredLogLevel {
  const level = (value ?? "info").toLowerCase();
  return (LOG_LEVELS as readonly string[]).includes(level) ? (level as ConfiguredLogLevel) : "info";
}

const envSchema = z.object({
  SERVER_HOST: z.string().default("0.0.0.0"),
  SERVER_PORT: int(5002),
  /** The key Dify sends as X-Api-Key (Dify's PLUGIN_DAEMON_KEY). */
  SERVER_KEY: z.string().optional(),
  DAEMON_KEY_SECRET_ARN: z.string().optional(),
  STORE_BACKEND: z.enum(["local", "aws"]).default("local"),
  DATA_DIR: z.string().optional(),
  METADATA_TABLE: z.string().optional(),
  PACKAGE_BUCKET: z.string().optional(),
  MAX_PLUGIN_PACKAGE_SIZE: int(52_428_800),
  MAX_BUNDLE_PACKAGE_SIZE: int(629_145_600),
  MAX_PACKAGE_ENTRIES: int(10_000),
  /** Cap on every other request body (JSON, forms, endpoint calls): upstream reads endpoint bodies up to 10 MiB. */
  MAX_REQUEST_BODY_SIZE: int(10_485_760),
  /** Deepest nesting of objects/arrays accepted in a JSON body. */
  MAX_JSON_DEPTH: int(512),
  /** Package and bundle uploads the local daemon reads at the same time; more are refused with 503. */
  MAX_CONCURRENT_UPLOADS: int(2),
  /** Milliseconds a request body may stay silent before the local daemon answers 408. */
  REQUEST_BODY_IDLE_TIMEOUT: int(30_000),
  /** Longest line a plugin may write (stdout, debugging socket): upstream names and default (5 MiB). */
  PLUGIN_RUNTIME_MAX_BUFFER_SIZE: int(5_242_880),
  PLUGIN_STDIO_MAX_BUFFER_SIZE: int(5_242_880),
  FORCE_VERIFYING_SIGNATURE: bool(true),
  ENFORCE_LANGGENIUS_PLUGIN_SIGNATURES: bool(true),
  THIRD_PARTY_SIGNATURE_VERIFICATION_ENABLED: bool(false),
  THIRD_PARTY_SIGNATURE_VERIFICATION_PUBLIC_KEYS: list,
  PLUGIN_MAX_EXECUTION_TIMEOUT: int(600),
  /** Minutes (upstream's unit); fractions allowed. */
  PLUGIN_INSTALL_TIMEOUT: z.coerce.number().positive().default(15),
  MARKETPLACE_API_URL: z.string().url().default("https://marketplace.dify.ai"),
  GITHUB_API_URL: z.string().url().default("https://github.com"),
  DIFY_INNER_API_URL: z.string().optional(),
  DIFY_INNER_API_KEY: z.string().optional(),
  DIFY_INNER_API_KEY_SECRET_ARN: z.string().optional(),
  /** Milliseconds one call to Dify's inner API may take, a streamed answer included (upstream name and default). */
  DIFY_BACKWARDS_INVOCATION_READ_TIMEOUT: int(240_000),
  /** Storage cap for plugins whose manifest gives no storage size (upstream name and default). */
  PERSISTENCE_STORAGE_MAX_SIZE: int(104_857_600),
  PLUGIN_ENDPOINT_ENABLED: bool(true),
  /** Remote debugging (TCP): on by default for the local daemon, like upstream; AWS has no TCP listener. */
  PLUGIN_REMOTE_INSTALLING_ENABLED: z.string().optional(),
  PLUGIN_REMOTE_INSTALLING_HOST: z.string().default("0.0.0.0"),
  PLUGIN_REMOTE_INSTALLING_PORT: int(5003),
  PLUGIN_REMOTE_INSTALLING_MAX_CONN: int(0),
  PYTHON_INTERPRETER_PATH: z.string().optional(),
  UV_PATH: z.string().optional(),
  PIP_MIRROR_URL: z.string().optional(),
  PYTHON_ENV_INIT_TIMEOUT: int(120),
  /** Local plugins run under max(manifest resource.memory, this floor); official manifests declare 1 MiB. */
  PLUGIN_MEMORY_FLOOR_MB: int(1024),
  /** Seconds a local plugin may go without a heartbeat before it is restarted (upstream: 120 s). */
  PLUGIN_HEARTBEAT_TIMEOUT: int(120),
  /** Seconds an upgraded or removed plugin's in-flight calls may take to finish before it is stopped. */
  PLUGIN_DRAIN_TIMEOUT: int(60),
  /** Seconds without a call after which a local plugin process is stopped until its next call (0: never). */
  PLUGIN_IDLE_TIMEOUT: int(600),
  /** Plugin ids (author/name) the local daemon starts with itself and never stops for idleness. */
  PLUGIN_KEEP_WARM: list,
  /** Local plugin processes starting at once; more wait, calls ahead of warm-ups (upstream's name and default). */
  PLUGIN_LOCAL_LAUNCHING_CONCURRENT: int(2).refine((n) => n >= 1, "expected at least 1"),
  /** Seconds without a request after which the local daemon gives its memory back (0: never). */
  MEMORY_RELEASE_IDLE_SECONDS: int(30),
  PLUGIN_FUNCTION_PREFIX: z.string().default("dify-plugin-"),
  PLUGIN_ROLE_ARN: z.string().optional(),
  PLUGIN_LAYER_ARN: z.string().optional(),
  PLUGIN_BUILDER_FUNCTION: z.string().optional(),
  INSTALL_WORKER_FUNCTION: z.string().optional(),
  DAEMON_PUBLIC_URL: z.string().optional(),
  PLUGIN_ARCH: z.enum(["arm64", "x86_64"]).default("arm64"),
  /** AWS: unzipped bytes of the plugin layer (set by the CDK stack), counted against Lambda's 250 MB. */
  PLUGIN_LAYER_BYTES: int(0),
  /** AWS: plugin functions get at least this much memory (and the CPU share that comes with it). */
  PLUGIN_MIN_MEMORY_MB: int(1024),
  /** AWS: VPC placement of plugin functions (comma-separated ids); none when empty. */
  PLUGIN_SUBNET_IDS: list,
  PLUGIN_SECURITY_GROUP_IDS: list,
  /** AWS: `fetch/manifest` downloads an unknown identifier from the marketplace (so Dify does not upload it). */
  FETCH_MISSING_MARKETPLACE_PACKAGES: z.string().optional(),
  /** Streams silent this long get a blank keep-alive line (API Gateway cuts streams idle for 5 minutes). */
  STREAM_KEEPALIVE_MS: int(60_000),
  /** Before a stream's first chunk the response is held back (Dify's first-token timeout) at most this long. */
  STREAM_FIRST_CHUNK_WAIT_MS: int(240_000),
  LOG_LEVEL: z.string().optional().transform(logLevelOf),
  /** The local daemon serves Prometheus metrics at GET /metrics, without a key (upstream name and default). */
  PROMETHEUS_ENABLED: bool(true),
  /** The daemon's own auto-upgrade check (docs/auto-upgrade.md); turn Dify's off when this is on. */
  AUTO_UPGRADE_ENABLED: bool(true),
  AUTO_UPGRADE_SNAPSHOT_CACHE_SECONDS: int(900),
  AUTO_UPGRADE_LEASE_SECONDS: int(3600),
});

/** The name of an environment variable the daemon's configuration reads: the schema's keys are their one home. */
export type DaemonEnvName = keyof z.input<typeof envSchema>;

/** Every variable the configuration reads, for code that checks names at run time (tests, tools). */
export const DAEMON_ENV_NAMES = Object.keys(envSchema.shape) as readonly DaemonEnvName[];

/**
 * Read outside the schema, by the code they are for: the Powertools service and metrics
 * namespace (observability/logger.ts, emf-exporter.ts) and X-Ray tracing (observability/tracing.ts).
 */
export const OBSERVABILITY_ENV_NAMES = [
  "POWERTOOLS_SERVICE_NAME",
  "POWERTOOLS_METRICS_NAMESPACE",
  "DAEMON_TRACING",
] as const;
export type ObservabilityEnvName = (typeof OBSERVABILITY_ENV_NAMES)[number];

/** Values for the daemon's variables, as a deployment writes them (a Lambda function's environment). */
export type DaemonEnvironment = { readonly [K in DaemonEnvName | ObservabilityEnvName]?: string };

export type DaemonConfig = ReturnType<typeof loadConfig>;

export function loadConfig(env: NodeJS.ProcessEnv = process.env) {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const detail = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new Error(`invalid daemon configuration: ${detail}`);
  }
  const e = parsed.data;
  return {
    host: e.SERVER_HOST,
    port: e.SERVER_PORT,
    serverKey: e.SERVER_KEY,
    daemonKeySecretArn: e.DAEMON_KEY_SECRET_ARN,
    storeBackend: e.STORE_BACKEND,
    dataDir: e.DATA_DIR ?? join(homedir(), ".local", "share", "dify-plugin-daemon-aws"),
    metadataTable: e.METADATA_TABLE,
    packageBucket: e.PACKAGE_BUCKET,
    packageLimits: {
      maxPackageBytes: e.MAX_PLUGIN_PACKAGE_SIZE,
      maxUncompressedBytes: e.MAX_PLUGIN_PACKAGE_SIZE,
      maxEntries: e.MAX_PACKAGE_ENTRIES,
    },
    maxBundleBytes: e.MAX_BUNDLE_PACKAGE_SIZE,
    requestLimits: requestLimitsOf(e),
    maxConcurrentUploads: Math.max(1, e.MAX_CONCURRENT_UPLOADS),
    requestBodyIdleTimeoutMs: e.REQUEST_BODY_IDLE_TIMEOUT,
    pluginLineMaxBytes: pluginLineMaxBytesOf(e),
    forceVerifyingSignature: e.FORCE_VERIFYING_SIGNATURE,
    enforceLanggeniusSignatures: e.ENFORCE_LANGGENIUS_PLUGIN_SIGNATURES,
    thirdPartyPublicKeyPaths: e.THIRD_PARTY_SIGNATURE_VERIFICATION_ENABLED
      ? e.THIRD_PARTY_SIGNATURE_VERIFICATION_PUBLIC_KEYS
      : [],
    executionTimeoutSeconds: e.PLUGIN_MAX_EXECUTION_TIMEOUT,
    installTimeoutMinutes: e.PLUGIN_INSTALL_TIMEOUT,
    marketplaceUrl: e.MARKETPLACE_API_URL.replace(/\/+$/, ""),
    githubUrl: e.GITHUB_API_URL.replace(/\/+$/, ""),
    difyInnerApiUrl: e.DIFY_INNER_API_URL?.replace(/\/+$/, ""),
    difyInnerApiKey: e.DIFY_INNER_API_KEY,
    difyInnerApiKeySecretArn: e.DIFY_INNER_API_KEY_SECRET_ARN,
    difyInnerApiTimeoutMs: e.DIFY_BACKWARDS_INVOCATION_READ_TIMEOUT,
    pluginStorageMaxBytes: e.PERSISTENCE_STORAGE_MAX_SIZE,
    endpointsEnabled: e.PLUGIN_ENDPOINT_ENABLED,
    remoteInstallingEnabled: bool(e.STORE_BACKEND === "local").parse(e.PLUGIN_REMOTE_INSTALLING_ENABLED),
    remoteInstallingHost: e.PLUGIN_REMOTE_INSTALLING_HOST,
    remoteInstallingPort: e.PLUGIN_REMOTE_INSTALLING_PORT,
    // Upstream's default, which an unset or 0 value also means there (internal/types/app/default.go @bdb5642a).
    remoteInstallingMaxConn: e.PLUGIN_REMOTE_INSTALLING_MAX_CONN || 256,
    pythonInterpreterPath: e.PYTHON_INTERPRETER_PATH,
    uvPath: e.UV_PATH,
    pipMirrorUrl: e.PIP_MIRROR_URL,
    pythonEnvInitTimeoutSeconds: e.PYTHON_ENV_INIT_TIMEOUT,
    pluginMemoryFloorBytes: e.PLUGIN_MEMORY_FLOOR_MB * 1024 * 1024,
    pluginHeartbeatTimeoutSeconds: e.PLUGIN_HEARTBEAT_TIMEOUT,
    pluginDrainTimeoutSeconds: e.PLUGIN_DRAIN_TIMEOUT,
    pluginIdleTimeoutSeconds: e.PLUGIN_IDLE_TIMEOUT,
    pluginKeepWarm: e.PLUGIN_KEEP_WARM,
    pluginLaunchingConcurrency: e.PLUGIN_LOCAL_LAUNCHING_CONCURRENT,
    memoryReleaseIdleSeconds: e.MEMORY_RELEASE_IDLE_SECONDS,
    pluginFunctionPrefix: e.PLUGIN_FUNCTION_PREFIX,
    pluginRoleArn: e.PLUGIN_ROLE_ARN,
    pluginLayerArn: e.PLUGIN_LAYER_ARN,
    pluginBuilderFunction: e.PLUGIN_BUILDER_FUNCTION,
    installWorkerFunction: e.INSTALL_WORKER_FUNCTION,
    daemonPublicUrl: e.DAEMON_PUBLIC_URL,
    pluginArch: e.PLUGIN_ARCH,
    pluginLayerBytes: e.PLUGIN_LAYER_BYTES,
    pluginMinMemoryMiB: e.PLUGIN_MIN_MEMORY_MB,
    pluginVpc: { subnetIds: e.PLUGIN_SUBNET_IDS, securityGroupIds: e.PLUGIN_SECURITY_GROUP_IDS },
    fetchMissingMarketplacePackages: bool(e.STORE_BACKEND === "aws").parse(e.FETCH_MISSING_MARKETPLACE_PACKAGES),
    streamKeepAlive: { idleMs: e.STREAM_KEEPALIVE_MS, firstChunkWaitMs: e.STREAM_FIRST_CHUNK_WAIT_MS },
    logLevel: e.LOG_LEVEL,
    prometheusEnabled: e.PROMETHEUS_ENABLED,
    autoUpgrade: {
      enabled: e.AUTO_UPGRADE_ENABLED,
      snapshotCacheSeconds: e.AUTO_UPGRADE_SNAPSHOT_CACHE_SECONDS,
      leaseSeconds: Math.max(60, e.AUTO_UPGRADE_LEASE_SECONDS),
    },
  };
}

type Env = z.infer<typeof envSchema>;

const requestLimitsOf = (e: Pick<Env, "MAX_REQUEST_BODY_SIZE" | "MAX_JSON_DEPTH">) => ({
  maxBodyBytes: e.MAX_REQUEST_BODY_SIZE,
  maxJsonDepth: e.MAX_JSON_DEPTH,
});

// Upstream's GetLocalRuntimeMaxBufferSize: the legacy stdio name wins when set to something else
// than its default (internal/types/app/config.go, bdb5642).
const pluginLineMaxBytesOf = (e: Pick<Env, "PLUGIN_RUNTIME_MAX_BUFFER_SIZE" | "PLUGIN_STDIO_MAX_BUFFER_SIZE">) =>
  e.PLUGIN_STDIO_MAX_BUFFER_SIZE !== 5_242_880 && e.PLUGIN_STDIO_MAX_BUFFER_SIZE !== 0
    ? e.PLUGIN_STDIO_MAX_BUFFER_SIZE
    : e.PLUGIN_RUNTIME_MAX_BUFFER_SIZE;

const requestLimitsSchema = envSchema.pick({ MAX_REQUEST_BODY_SIZE: true, MAX_JSON_DEPTH: true });
const lineLimitSchema = envSchema.pick({ PLUGIN_RUNTIME_MAX_BUFFER_SIZE: true, PLUGIN_STDIO_MAX_BUFFER_SIZE: true });

let lastRequestLimits: { raw: string; limits: { maxBodyBytes: number; maxJsonDepth: number } } | undefined;

/**
 * The JSON body limits, for code that sees no daemon (request binding); loadConfig validated
 * them. Every request with a JSON body asks: the answer is parsed again only when the values change.
 */
export function requestLimits(env: NodeJS.ProcessEnv = process.env): { maxBodyBytes: number; maxJsonDepth: number } {
  const raw = `${env.MAX_REQUEST_BODY_SIZE}\n${env.MAX_JSON_DEPTH}`;
  if (lastRequestLimits?.raw !== raw) {
    const parsed = requestLimitsSchema.safeParse(env);
    const limits = requestLimitsOf(parsed.success ? parsed.data : requestLimitsSchema.parse({}));
    lastRequestLimits = { raw, limits };
  }
  return lastRequestLimits.limits;
}

const logLevelSchema = envSchema.pick({ LOG_LEVEL: true });

/** The log level, for the logger, which exists before any daemon does; the daemon's config has the same. */
export function logLevel(env: NodeJS.ProcessEnv = process.env): ConfiguredLogLevel {
  const parsed = logLevelSchema.safeParse(env);
  return parsed.success ? parsed.data.LOG_LEVEL : "info";
}

/** The plugin output line cap, for code that sees no daemon (a plugin process's connection). */
export function pluginLineMaxBytes(env: NodeJS.ProcessEnv = process.env): number {
  const parsed = lineLimitSchema.safeParse(env);
  return pluginLineMaxBytesOf(parsed.success ? parsed.data : lineLimitSchema.parse({}));
}
