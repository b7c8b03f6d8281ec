/**
 * Newline-delimited reading of a byte stream with a cap on the length of a line. readline, or
 * appending chunks to a string, keeps a whole line in memory however long it grows; this keeps
 * at most `maxLineBytes` of one, reports a line that grows past the cap once (with its first
 * bytes, so the caller can tell whose it was) and skips the rest of it up to the next newline.
 * Only the new chunk is searched for a newline, never what is already buffered, and a line is
 * decoded once, when it is complete.
 *
 * Upstream reads plugin stdout the same way: a bufio.Scanner capped at
 * PLUGIN_RUNTIME_MAX_BUFFER_SIZE, 5 MiB (internal/core/local_runtime/instance.go, bdb5642).
 */
import type { Readable } from "node:stream";
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
  const pending = new PendingLine();
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
    const head = pending.head(piece);
    pending.clear();
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
      if (pending.size + piece.length > limit()) {
        overflow(piece);
        if (newline < 0) {
          skipping = true;
          return;
        }
        start = newline + 1;
        continue;
      }
      if (newline < 0) {
        pending.append(piece, limit());
        return;
      }
      const line = pending.size === 0 ? piece.toString("utf8") : pending.take(piece);
      start = newline + 1;
      deliver(line);
    }
  };
  const onEnd = () => {
    if (!skipping && pending.size > 0) deliver(pending.take(Buffer.alloc(0)));
    pending.clear();
  };

  input.on("data", onData);
  input.once("end", onEnd);
  return () => {
    input.off("data", onData);
    input.off("end", onEnd);
    pending.clear();
  };
}

/**
 * The start of a line that spans chunks, copied into one buffer of its own that grows by
 * doubling: the stream's chunks are released as they arrive (nothing keeps a whole line's worth
 * of them), and a long line lives in a few large allocations the allocator gives back to the
 * system once freed, not in thousands of small ones.
 */
class PendingLine {
  private buffer: Buffer | undefined;
  size = 0;

  /** Adds a piece; `cap` (the line limit, which the caller checked) bounds the growth. */
  append(piece: Buffer, cap: number): void {
    const needed = this.size + piece.length;
    if (!this.buffer || needed > this.buffer.length) {
      const grown = Buffer.allocUnsafe(Math.max(needed, Math.min(cap, 2 * (this.buffer?.length ?? 32 * 1024))));
      this.buffer?.copy(grown, 0, 0, this.size);
      this.buffer = grown;
    }
    piece.copy(this.buffer, this.size);
    this.size = needed;
  }

  /** The whole line (the pending bytes and its last piece), decoded; the buffer is let go. */
  take(last: Buffer): string {
    this.append(last, 0);
    const line = (this.buffer as Buffer).toString("utf8", 0, this.size);
    this.clear();
    return line;
  }

  /** The first bytes of the pending bytes followed by `piece`, decoded (a split character becomes U+FFFD). */
  head(piece: Buffer): string {
    const fromPending = this.buffer ? this.buffer.subarray(0, Math.min(this.size, HEAD_BYTES)) : Buffer.alloc(0);
    const rest = piece.subarray(0, Math.max(0, HEAD_BYTES - fromPending.length));
    return Buffer.concat([fromPending, rest]).toString("utf8");
  }

  clear(): void {
    this.buffer = undefined;
    this.size = 0;
  }
}
