/**
 * The daemon's response envelope `{code, message, data}`. On errors `message` is itself a JSON
 * string `{message, error_type, args}`: Dify parses it to pick its exception class.
 */
import type { DaemonError } from "./errors.js";

export interface Envelope {
  code: number;
  message: string;
  data: unknown;
}

export const successEnvelope = (data: unknown): Envelope => ({ code: 0, message: "success", data });

export function errorEnvelope(err: DaemonError): Envelope {
  return {
    code: err.code,
    message: JSON.stringify({ message: err.message, error_type: err.errorType, args: err.args }),
    data: null,
  };
}

/** One server-sent event carrying an envelope, as upstream frames dispatch streams. */
export const sseChunk = (envelope: Envelope): string => `data: ${JSON.stringify(envelope)}\n\n`;
