/**
 * The local daemon's last line of defence: an unhandled rejection or uncaught exception is
 * logged with the request it happened in, that request fails with an internal error, and the
 * daemon keeps serving everyone else. Node's default (exit) would end every session of every
 * tenant for one bad request. This is a net under the real fixes, not a substitute: each error
 * it catches is a bug, logged as one.
 */
import { logger } from "../logger.js";
import { currentRequest } from "./request-scope.js";

let installed = false;

export function installSafetyNet(): void {
  if (installed) return;
  installed = true;
  process.on("unhandledRejection", (reason) => caught("unhandled rejection", reason));
  process.on("uncaughtException", (err) => caught("uncaught exception", err));
}

function caught(kind: string, err: unknown): void {
  const request = currentRequest();
  logger.error(
    { err, request: request ? { method: request.method, path: request.path } : undefined },
    `${kind}; the daemon keeps serving`,
  );
  try {
    request?.fail(err);
  } catch (failure) {
    logger.error({ err: failure }, "failing the request after an escaped error failed too");
  }
}
