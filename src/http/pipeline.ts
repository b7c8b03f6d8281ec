/**
 * One request through a route group: route lookup, the daemon key check, and the mapping of
 * thrown errors to upstream's statuses and envelopes. Shared by every Lambda handler and the
 * local daemon.
 */
import { timingSafeEqual } from "node:crypto";
import { asDaemonError, DaemonError, unauthorized } from "../domain/errors.js";
import { logger } from "../logger.js";
import { header, type DaemonRequest } from "./daemon-request.js";
import { fail, json, type DaemonResponse } from "./daemon-response.js";
import type { Router } from "./router.js";

export type DaemonKeySource = () => Promise<string>;

export async function serve(router: Router, req: DaemonRequest, daemonKey: DaemonKeySource): Promise<DaemonResponse> {
  const match = router.match(req.method, req.path);
  // Upstream's NoRoute answer: note `code` is a string here.
  if (!match) return json({ code: "not_found", message: "route not found" }, 404);
  req.params = match.params;
  try {
    if (!match.route.public && !keyMatches(header(req, "x-api-key"), await daemonKey())) {
      return fail(unauthorized(), 401);
    }
    return await match.route.handler(req);
  } catch (thrown) {
    // Errors the daemon meant to answer are not news; anything else is a bug worth a log line.
    if (!(thrown instanceof DaemonError)) logger.error({ err: thrown, path: req.path }, "unexpected error");
    const err = asDaemonError(thrown);
    return fail(err, err.httpStatus);
  }
}

function keyMatches(given: string | undefined, expected: string): boolean {
  if (!given || !expected) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}
