/**
 * What a route handler answers: a JSON document (usually an envelope), raw bytes, or a stream.
 * The API Gateway adapter and the local server turn these into HTTP.
 */

import { errorEnvelope, successEnvelope } from "../domain/envelope.js";
import type { DaemonError } from "../domain/errors.js";

export type DaemonResponse =
  | { kind: "json"; status: number; body: unknown; headers?: Record<string, string> }
  | { kind: "bytes"; status: number; body: Uint8Array; headers: Record<string, string> }
  | { kind: "stream"; status: number; body: AsyncIterable<Uint8Array | string>; headers: Record<string, string> };

export const json = (body: unknown, status = 200): DaemonResponse => ({ kind: "json", status, body });

/** Success envelope. Dify rejects `data: null` on success, so handlers must return a value. */
export const ok = (data: unknown): DaemonResponse => json(successEnvelope(data));

/**
 * Error envelope. Upstream answers most management errors with HTTP 200 and a negative code;
 * Dify raises before reading the body on 4xx/5xx, so the status decides which error it sees.
 */
export const fail = (err: DaemonError, status = 200): DaemonResponse => json(errorEnvelope(err), status);

export const bytes = (body: Uint8Array, contentType = "application/octet-stream"): DaemonResponse => ({
  kind: "bytes",
  status: 200,
  body,
  headers: { "content-type": contentType },
});

export const eventStream = (body: AsyncIterable<Uint8Array | string>): DaemonResponse => ({
  kind: "stream",
  status: 200,
  body,
  headers: { "content-type": "text/event-stream", "cache-control": "no-cache" },
});
