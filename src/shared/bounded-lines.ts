/**
 * Newline-delimited reading of a byte stream with a cap on the length of a line. readline, or
 * appending chunks to a string, keeps a whole line in memory however long it grows; this keeps
 * at most `maxLineBytes` of one, reports a line that grows past the cap once (with its first
 * bytes, so the caller can tell whose it was) and skips the rest of it up to the next newline.
 * Only the new chunk is searched for a newline, never what is already buffered.
 *
 * Upstream reads plugin stdout the same way: a bufio.Scanner capped at
 * PLUGIN_RUNTIME_MAX_BUFFER_SIZE, 5 MiB (internal/core/local_runtime/instance.go, bdb5642).
 */
import type { Readable } from "node:stream";
import { StringDecoder } from "node:string_decoder";
import { logger } from "../logger.js";

export interface OversizedLine {
  /** The line's first bytes (up to 4 KiB), decoded. */
  head: string;
  /** The cap it went past. */
  limit: number;
}

/** A fixed cap, or one read for each line (a socket's cap can change after its handshake). */
export type LineLimit = number | (() => number);

const HEAD_BYTES = 4096;
const NEWLINE = 0x0a;

/**
 * Calls `onLine` for each non-empty line (without its `\n` or `\r\n`), and `onOversize` once for
 * each line longer than the cap, which is then dropped. A last line without a newline is
 * delivered when the stream ends. Returns a function that stops reading.
 */
export function readBoundedLines(
  input: Readable,
  maxLineBytes: LineLimit,
  onLine: (line: string) => void,
  onOversize: (line: OversizedLine) => void,
): () => void {
  const limit = typeof maxLineBytes === "function" ? maxLineBytes : () => maxLineBytes;
  let parts: Buffer[] = [];
  let size = 0;
  let skipping = false;

  const deliver = (line: string) => {
    const text = line.endsWith("\r") ? line.slice(0, -1) : line;
    if (text === "") return;
    try {
      onLine(text);
    } catch (err) {
      // A line handler's bug must not escape into the stream's event and take the process down.
      logger.error({ err }, "line handler failed");
    }
  };
  const overflow = (piece: Buffer) => {
    const head = headOf([...parts, piece]);
    parts = [];
    size = 0;
    try {
      onOversize({ head, limit: limit() });
    } catch (err) {
      logger.error({ err }, "oversized line handler failed");
    }
  };

  const onData = (chunk: Buffer | string) => {
    const buffer = typeof chunk === "string" ? Buffer.from(chunk, "utf8") : chunk;
    let start = 0;
    while (start < buffer.length) {
      const newline = buffer.indexOf(NEWLINE, start);
      const end = newline < 0 ? buffer.length : newline;
      if (skipping) {
        if (newline < 0) return;
        skipping = false;
        start = newline + 1;
        continue;
      }
      const piece = buffer.subarray(start, end);
      if (size + piece.length > limit()) {
        overflow(piece);
        if (newline < 0) {
          skipping = true;
          return;
        }
        start = newline + 1;
        continue;
      }
      if (newline < 0) {
        parts.push(piece);
        size += piece.length;
        return;
      }
      const line = parts.length === 0 ? piece.toString("utf8") : joined([...parts, piece]);
      parts = [];
      size = 0;
      start = newline + 1;
      deliver(line);
    }
  };
  const onEnd = () => {
    if (!skipping && parts.length > 0) deliver(joined(parts));
    parts = [];
    size = 0;
  };

  input.on("data", onData);
  input.once("end", onEnd);
  return () => {
    input.off("data", onData);
    input.off("end", onEnd);
    parts = [];
  };
}

/**
 * Decodes a line's pieces one by one and joins the text: no second full-size byte buffer, only
 * the string the caller parses (a multi-byte character split between chunks stays whole).
 */
function joined(pieces: Buffer[]): string {
  const decoder = new StringDecoder("utf8");
  let text = "";
  for (const piece of pieces) text += decoder.write(piece);
  return text + decoder.end();
}

function headOf(pieces: Buffer[]): string {
  const head: Buffer[] = [];
  let length = 0;
  for (const piece of pieces) {
    if (length >= HEAD_BYTES) break;
    const take = piece.subarray(0, HEAD_BYTES - length);
    head.push(take);
    length += take.length;
  }
  return joined(head);
}
