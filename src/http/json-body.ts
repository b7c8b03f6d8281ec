/**
 * JSON request bodies under a size and a nesting-depth limit. JSON.parse copes with any depth,
 * but JSON.stringify (every plugin request is re-serialised for the plugin) overflows the stack
 * a few thousand levels down, and the plugin's Python json gives up near 1000: a deep body is
 * refused here, as the caller's mistake, before anything is built from it.
 */
import { requestLimits } from "../config.js";
import { DaemonError } from "../domain/errors.js";

export interface JsonLimits {
  maxBodyBytes: number;
  maxJsonDepth: number;
}

/** A body the caller got wrong: -400 with the given HTTP status. */
export const badJson = (message: string, status = 400) =>
  new DaemonError("PluginDaemonBadRequestError", message).withStatus(status);

/** Bodies already found within the limits (the pipeline checks, then a handler parses). */
const checked = new WeakSet<Uint8Array>();

/** Refuses a JSON body above the size or depth limit (-400; 413 for size, 400 for depth). */
export function checkJsonBody(body: Uint8Array, given?: JsonLimits): void {
  if (checked.has(body)) return;
  const limits = given ?? requestLimits();
  if (body.length > limits.maxBodyBytes)
    throw badJson(`request body too large: at most ${limits.maxBodyBytes} bytes`, 413);
  if (nestingExceeds(body, limits.maxJsonDepth))
    throw badJson(`request body is nested too deeply: at most ${limits.maxJsonDepth} levels`);
  checked.add(body);
}

/** Parses a JSON body, refusing one above the size or depth limit and one that is not JSON. */
export function parseJsonBody(body: Uint8Array, limits?: JsonLimits): unknown {
  checkJsonBody(body, limits);
  try {
    return JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString("utf8"));
  } catch {
    throw badJson("request body is not valid JSON");
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Whether objects/arrays in a JSON text nest deeper than `max`, by one pass over the bytes
 * (brackets inside strings do not count). Stops at the first level past `max`.
 */
export function nestingExceeds(bytes: Uint8Array, max: number): boolean {
  let depth = 0;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i];
    if (c === QUOTE) {
      // Jump to the closing quote: one not preceded by an odd run of backslashes.
      let end = i;
      for (;;) {
        end = bytes.indexOf(QUOTE, end + 1);
        if (end < 0) return false;
        let slashes = 0;
        while (bytes[end - 1 - slashes] === BACKSLASH) slashes++;
        if (slashes % 2 === 0) break;
      }
      i = end;
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
  return false;
}
