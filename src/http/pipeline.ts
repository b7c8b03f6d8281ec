/**
 * One request through a route group: route lookup, the daemon key check, and the mapping of
 * thrown errors to upstream's statuses and envelopes. Shared by every Lambda handler and the
 * local daemon.
 */
import { timingSafeEqual } from "node:crypto";
import { asDaemonError, DaemonError, unauthorized } from "../domain/errors.js";
import { logger } from "../logger.js";
import { appendLogContext } from "../observability/log-context.js";
import { requestLogFields } from "../observability/request-fields.js";
import { type DaemonRequest, header } from "./daemon-request.js";
import { type DaemonResponse, fail, json } from "./daemon-response.js";
import { checkJsonBody } from "./json-body.js";
import type { Router } from "./router.js";

/** The daemon key: a key known at start comes back as it is, so checking it waits no turn. */
export type DaemonKeySource = () => string | Promise<string>;

/** Upstream's NoRoute answer: note `code` is a string here. */
export const routeNotFound = (): DaemonResponse => json({ code: "not_found", message: "route not found" }, 404);

export async function serve(router: Router, req: DaemonRequest, daemonKey: DaemonKeySource): Promise<DaemonResponse> {
  try {
    const route = router.find(req.method, req.path);
    if (!route) return routeNotFound();
    if (!route.public) {
      const accepted = keyAccepted(header(req, "x-api-key"), daemonKey);
      if (accepted !== true && !(await accepted)) return fail(unauthorized(), 401);
    }
    // Inside the try: parameters that do not decode are a 400 like any other bad input.
    req.params = router.match(req.method, req.path)?.params ?? {};
    appendLogContext(requestLogFields(req));
    // Every JSON body the daemon reads is checked here, whichever handler parses it; a public
    // endpoint's body is the plugin's to read, passed on as bytes.
    if (req.body.length > 0 && isJson(req) && !route.pattern.startsWith("/e/")) checkJsonBody(req.body);
    return await route.handler(req);
  } catch (thrown) {
    // Errors the daemon meant to answer are not news; anything else is a bug worth a log line.
    if (!(thrown instanceof DaemonError)) logger.error({ err: thrown, path: req.path }, "unexpected error");
    const err = asDaemonError(thrown);
    return fail(err, err.httpStatus);
  }
}

const isJson = (req: DaemonRequest) =>
  (header(req, "content-type") ?? "").split(";")[0]?.trim().toLowerCase() === "application/json";

/**
 * Whether the caller's X-Api-Key is the daemon key: at once when the key is known (a key from the
 * configuration), so an accepted request waits no turn; once fetched otherwise.
 */
export function keyAccepted(given: string | undefined, daemonKey: DaemonKeySource): boolean | Promise<boolean> {
  const key = daemonKey();
  return typeof key === "string" ? keyMatches(given, key) : key.then((k) => keyMatches(given, k));
}

/** Constant-time comparison of the caller's X-Api-Key with the daemon key. */
export function keyMatches(given: string | undefined, expected: string): boolean {
  if (!given || !expected) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}
