/** `npm start`: the local daemon on port 5002 with the embedded store and Python subprocess plugins. */

import { LocalPluginRuntime } from "../adapters/local/local-plugin-runtime.js";
import { startRemoteDebuggingServer } from "../adapters/local/remote-debugging-server.js";
import { sharedDaemon } from "../daemon.js";
import { logger } from "../logger.js";
import { startAutoUpgradeTimer } from "../services/auto-upgrade.js";
import { installSafetyNet } from "./safety-net.js";
import { startLocalServer } from "./server.js";

installSafetyNet();
const daemon = await sharedDaemon();
// A previous run that died mid-install left half-built plugins and unfinished tasks behind.
await daemon.runtime.recover?.();
const interrupted = await daemon.installer.failInterrupted();
if (interrupted > 0)
  logger.warn({ tasks: interrupted }, "failed the install tasks a previous daemon run left unfinished");
// Each route has its own body cap now (body-policy.ts), checked before the body is read.
const server = await startLocalServer(daemon, { host: daemon.config.host, port: daemon.config.port });
logger.info(
  { url: `http://${daemon.config.host}:${daemon.config.port}`, dataDir: daemon.config.dataDir },
  "plugin daemon listening",
);
const { remoteInstallingEnabled, remoteInstallingHost: rHost, remoteInstallingPort: rPort } = daemon.config;
const debugging =
  remoteInstallingEnabled && daemon.runtime instanceof LocalPluginRuntime
    ? await startRemoteDebuggingServer(daemon.remotePlugins, daemon.runtime, {
        host: rHost,
        port: rPort,
        lineMaxBytes: daemon.config.pluginLineMaxBytes,
      })
    : undefined;
if (debugging) logger.info({ address: `${rHost}:${rPort}` }, "remote debugging server listening");
// The local stand-in for the EventBridge schedule that runs functions/upgrade-check.ts on AWS.
const autoUpgrade = daemon.config.autoUpgrade.enabled ? startAutoUpgradeTimer(daemon.autoUpgrade) : undefined;

const shutdown = async (signal: string) => {
  logger.info({ signal }, "shutting down");
  autoUpgrade?.stop();
  server.close();
  debugging?.close();
  await daemon.close();
  process.exit(0);
};
process.once("SIGINT", () => void shutdown("SIGINT"));
process.once("SIGTERM", () => void shutdown("SIGTERM"));
