/**
 * Reading a request body on the local daemon, after the route and the key were checked: under the
 * route's cap, with an idle timeout, either into one buffer (JSON and other small bodies) or as a
 * guarded stream the multipart parser reads (uploads).
 */
import type { IncomingMessage } from "node:http";
import { Transform, type TransformCallback } from "node:stream";
import { DaemonError } from "../domain/errors.js";

export type BodyFailure = "too-large" | "timeout" | "aborted";

export type BodyRead = { ok: true; body: Buffer } | { ok: false; failure: BodyFailure };

/** The length the request announced, if it did. */
export function declaredLength(req: IncomingMessage): number | undefined {
  const value = req.headers["content-length"];
  if (value === undefined) return undefined;
  const n = Number(value);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

/**
 * The whole body in one buffer, under the cap and the idle timeout. A small request comes in the
 * same read as its headers: the HTTP parser hands its body over right after the request event, so
 * one microtask later it is taken as it is, without listeners or a timer (about 60 µs a request).
 */
export async function requestBody(req: IncomingMessage, maxBytes: number, idleMs: number): Promise<BodyRead> {
  await undefined;
  return arrivedBody(req, maxBytes) ?? readBody(req, maxBytes, idleMs);
}

/**
 * The whole body when all of it has arrived already, taken at once. Undefined otherwise (a
 * chunked body, or one still arriving). A request with neither Content-Length nor
 * Transfer-Encoding has no body (RFC 9112, 6.3).
 */
export function arrivedBody(req: IncomingMessage, maxBytes: number): BodyRead | undefined {
  if (req.readableFlowing) return undefined;
  const expected = declaredLength(req) ?? (req.headers["transfer-encoding"] === undefined ? 0 : undefined);
  if (expected === undefined || expected > maxBytes || req.readableLength !== expected) return undefined;
  return { ok: true, body: expected > 0 ? (req.read() as Buffer) : Buffer.alloc(0) };
}

/**
 * The whole body in one buffer. With a Content-Length (already checked against the cap) the
 * buffer is allocated once at that size; a chunked body is collected until it passes the cap.
 */
export function readBody(req: IncomingMessage, maxBytes: number, idleMs: number): Promise<BodyRead> {
  return new Promise((resolve) => {
    const declared = declaredLength(req);
    const into = declared !== undefined && declared <= maxBytes ? Buffer.allocUnsafe(declared) : undefined;
    const parts: Buffer[] = [];
    let size = 0;
    let settled = false;
    const settle = (result: BodyRead) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.off("data", onData);
      resolve(result);
    };
    const timer = setTimeout(() => settle({ ok: false, failure: "timeout" }), idleMs);
    const onData = (chunk: Buffer) => {
      timer.refresh();
      if (size + chunk.length > (into?.length ?? maxBytes)) return settle({ ok: false, failure: "too-large" });
      if (into) chunk.copy(into, size);
      else parts.push(chunk);
      size += chunk.length;
    };
    req.on("data", onData);
    req.once("end", () => settle({ ok: true, body: into ? into.subarray(0, size) : Buffer.concat(parts, size) }));
    req.once("error", () => settle({ ok: false, failure: "aborted" }));
    req.once("close", () =>
      settle(
        req.complete
          ? { ok: true, body: into ? into.subarray(0, size) : Buffer.concat(parts, size) }
          : { ok: false, failure: "aborted" },
      ),
    );
  });
}

/** Fails a streamed body with the answer the caller should get. */
export class BodyStreamError extends DaemonError {
  constructor(
    readonly failure: BodyFailure,
    message: string,
    status: number,
  ) {
    super("PluginDaemonBadRequestError", message);
    this.withStatus(status);
  }
}

/**
 * The request body as a stream that fails (with a BodyStreamError) once more than `maxBytes`
 * pass or nothing arrives for `idleMs`. The request itself is left readable so the answer can
 * still be written; what arrives after a failure is discarded.
 */
export function guardedBody(
  req: IncomingMessage,
  maxBytes: number,
  idleMs: number,
  messages: { tooLarge: string },
): Transform {
  let size = 0;
  const guard = new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      timer.refresh();
      size += chunk.length;
      if (size > maxBytes) return callback(new BodyStreamError("too-large", messages.tooLarge, 413));
      callback(null, chunk);
    },
    flush(callback) {
      clearTimeout(timer);
      callback();
    },
  });
  const timer = setTimeout(
    () =>
      guard.destroy(new BodyStreamError("timeout", `request body timed out: nothing arrived for ${idleMs} ms`, 408)),
    idleMs,
  );
  const stop = () => {
    clearTimeout(timer);
    req.unpipe(guard);
    req.resume();
  };
  guard.once("error", stop);
  guard.once("close", () => clearTimeout(timer));
  req.once("aborted", () => guard.destroy(new BodyStreamError("aborted", "the client closed the connection", 400)));
  req.pipe(guard);
  return guard;
}
