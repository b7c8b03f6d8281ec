/** `npm start`: the local daemon on port 5002 with the embedded store and Python subprocess plugins. */

import { LocalPluginRuntime } from "../adapters/local/local-plugin-runtime.js";
import { startRemoteDebuggingServer } from "../adapters/local/remote-debugging-server.js";
import { sharedDaemon } from "../daemon.js";
import { logger } from "../logger.js";
import { requestActivity } from "../routes/request-activity.js";
import { startAutoUpgradeTimer } from "../services/auto-upgrade.js";
import { releaseMemoryWhenQuiet } from "./idle-memory.js";
import { installSafetyNet } from "./safety-net.js";
import { startLocalServer } from "./server.js";

installSafetyNet();
/**
 * A daemon that cannot open its store, recover its plugins or listen says why and exits 1. Left
 * to the safety net, the failure would be logged as one more escaped error and the process would
 * end with 0 and nothing listening, which a supervisor reads as a clean stop.
 */
const mustStart = <T>(step: Promise<T>): Promise<T> =>
  step.catch((err: unknown) => {
    logger.error({ err }, "the daemon could not start");
    process.exit(1);
  });
const daemon = await mustStart(sharedDaemon());
// A previous run that died mid-install left half-built plugins and unfinished tasks behind.
await mustStart(Promise.resolve(daemon.runtime.recover?.()));
const interrupted = await mustStart(daemon.installer.failInterrupted());
if (interrupted > 0)
  logger.warn({ tasks: interrupted }, "failed the install tasks a previous daemon run left unfinished");
// Each route has its own body cap now (body-policy.ts), checked before the body is read.
const server = await mustStart(startLocalServer(daemon, { host: daemon.config.host, port: daemon.config.port }));
logger.info(
  { url: `http://${daemon.config.host}:${daemon.config.port}`, dataDir: daemon.config.dataDir },
  "plugin daemon listening",
);
const { remoteInstallingEnabled, remoteInstallingHost: rHost, remoteInstallingPort: rPort } = daemon.config;
const debugging =
  remoteInstallingEnabled && daemon.runtime instanceof LocalPluginRuntime
    ? await mustStart(
        startRemoteDebuggingServer(daemon.remotePlugins, daemon.runtime, {
          host: rHost,
          port: rPort,
          lineMaxBytes: daemon.config.pluginLineMaxBytes,
          maxConnections: daemon.config.remoteInstallingMaxConn,
        }),
      )
    : undefined;
if (debugging) logger.info({ address: `${rHost}:${rPort}` }, "remote debugging server listening");
// The local stand-in for the EventBridge schedule that runs functions/upgrade-check.ts on AWS.
const autoUpgrade = daemon.config.autoUpgrade.enabled ? startAutoUpgradeTimer(daemon.autoUpgrade) : undefined;
// Memory goes back after a burst, once the daemon has been quiet for a while.
const { memoryReleaseIdleSeconds } = daemon.config;
const stopReleasing =
  memoryReleaseIdleSeconds > 0
    ? releaseMemoryWhenQuiet({ quietMs: memoryReleaseIdleSeconds * 1000, activity: requestActivity })
    : undefined;

const shutdown = async (signal: string) => {
  logger.info({ signal }, "shutting down");
  autoUpgrade?.stop();
  stopReleasing?.();
  server.close();
  debugging?.close();
  await daemon.close();
  process.exit(0);
};
process.once("SIGINT", () => void shutdown("SIGINT"));
process.once("SIGTERM", () => void shutdown("SIGTERM"));
