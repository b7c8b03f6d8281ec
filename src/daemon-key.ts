/**
 * The daemon key, resolved in one place: what Dify sends as X-Api-Key (its PLUGIN_DAEMON_KEY)
 * and what session callback tokens of Lambda plugins are signed with. On AWS it is the secret
 * DAEMON_KEY_SECRET_ARN names, else SERVER_KEY; the local daemon takes SERVER_KEY or, without
 * one, upstream's docker-compose default so a local Dify connects without setup.
 */
import type { DaemonConfig } from "./config.js";
import type { DaemonKeySource } from "./http/pipeline.js";
import { logger } from "./logger.js";

/** Upstream docker-compose's default key. */
export const LOCAL_DEFAULT_KEY = "lYkiYYT6owG+71oLerGzA7GXCgOT++6ovaezWAjpCjf+Sjc3ZtU+qUEi";

/**
 * Reads the key when asked: a secret is fetched on first use (and kept by the secret cache); a
 * key from the configuration is known at once.
 */
export function daemonKeySource(config: DaemonConfig): DaemonKeySource {
  if (config.storeBackend === "aws") {
    const arn = config.daemonKeySecretArn;
    if (arn) return async () => (await import("./adapters/aws/secrets.js")).secretValue(arn);
    return async () => {
      if (!config.serverKey) throw new Error("SERVER_KEY must be set when STORE_BACKEND=aws");
      return config.serverKey;
    };
  }
  if (!config.serverKey) logger.warn("SERVER_KEY is not set: using the upstream docker-compose default key");
  const key = config.serverKey ?? LOCAL_DEFAULT_KEY;
  return () => key;
}
