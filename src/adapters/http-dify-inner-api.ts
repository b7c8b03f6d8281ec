/**
 * Dify's inner API over HTTP. Streamed answers come in one of two framings depending on the
 * Dify version: newer Dify sends length-prefixed frames (magic byte 0x0F, little-endian header,
 * see `readFrames`), older Dify sends lines (`{json}\n\n`, optionally `data: `-prefixed, with
 * `event:` lines to skip). The first byte tells them apart.
 */
import { z } from "zod";
import { type DifyInnerApi, InnerApiError, type InnerApiPath } from "../ports/dify-inner-api.js";

export interface HttpDifyInnerApiOptions {
  /** `DIFY_INNER_API_URL`, e.g. http://api:5001 (a path prefix is kept). */
  baseUrl: string;
  /** `DIFY_INNER_API_KEY`, possibly read from Secrets Manager. */
  key: () => Promise<string>;
  /** Upper bound for one call including a whole streamed answer (upstream's read timeout, 240 s). */
  timeoutMs: number;
  /** Largest accepted frame or line (upstream: 30 MiB by default). */
  maxChunkBytes?: number;
}

const answerSchema = z.object({ data: z.unknown().optional(), error: z.string().nullish() }).loose();

const FRAME_MAGIC = 0x0f;
const FRAME_HEADER_BYTES = 0x0a;

export class HttpDifyInnerApi implements DifyInnerApi {
  constructor(private readonly options: HttpDifyInnerApiOptions) {}

  async call(path: InnerApiPath, payload: Record<string, unknown>, signal?: AbortSignal): Promise<unknown> {
    const res = await this.post(path, payload, signal);
    const text = await this.guard(() => res.text(), signal);
    if (!res.ok) throw new InnerApiError(`Dify inner API answered HTTP ${res.status} on ${path}${snippet(text)}`);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new InnerApiError(`Dify inner API answered ${path} with something that is not JSON${snippet(text)}`);
    }
    return dataOf(json);
  }

  async *stream(path: InnerApiPath, payload: Record<string, unknown>, signal?: AbortSignal): AsyncGenerator<unknown> {
    const res = await this.post(path, payload, signal);
    if (res.status !== 200) {
      const text = await res.text().catch(() => "");
      throw new InnerApiError(`request failed with status code: ${res.status} and respond with: ${text.slice(0, 500)}`);
    }
    if (!res.body) return;
    const max = this.options.maxChunkBytes ?? 30 * 1024 * 1024;
    const chunks = this.guardIterable(res.body as AsyncIterable<Uint8Array>, signal);
    for await (const document of splitDocuments(chunks, max)) {
      let json: unknown;
      try {
        json = JSON.parse(document);
      } catch {
        continue; // upstream skips stream data that does not parse
      }
      yield dataOf(json);
    }
  }

  private url(path: InnerApiPath): string {
    return `${this.options.baseUrl.replace(/\/+$/, "")}/inner/api/${path}`;
  }

  private async post(path: InnerApiPath, payload: Record<string, unknown>, signal?: AbortSignal): Promise<Response> {
    const key = await this.options.key();
    const deadline = AbortSignal.timeout(this.options.timeoutMs);
    const combined = signal ? AbortSignal.any([signal, deadline]) : deadline;
    try {
      return await fetch(this.url(path), {
        method: "POST",
        headers: { "content-type": "application/json", "x-inner-api-key": key },
        body: JSON.stringify(payload),
        signal: combined,
      });
    } catch (err) {
      throw this.describe(err, path, deadline);
    }
  }

  private async guard<T>(read: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    try {
      return await read();
    } catch (err) {
      if (signal?.aborted) throw err;
      throw new InnerApiError(`Dify inner API answer could not be read: ${(err as Error).message}`);
    }
  }

  private async *guardIterable(body: AsyncIterable<Uint8Array>, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
    try {
      yield* body;
    } catch (err) {
      if (signal?.aborted) throw err;
      const timedOut = (err as Error).name === "TimeoutError" || (err as Error).name === "AbortError";
      throw new InnerApiError(
        timedOut
          ? `Dify inner API did not finish answering within ${this.options.timeoutMs / 1000}s`
          : `Dify inner API stream broke: ${(err as Error).message}`,
      );
    }
  }

  private describe(err: unknown, path: InnerApiPath, deadline: AbortSignal): Error {
    if (deadline.aborted)
      return new InnerApiError(`Dify inner API did not answer ${path} within ${this.options.timeoutMs / 1000}s`);
    const e = err as Error & { cause?: { code?: string; message?: string } };
    if (e.name === "AbortError") return e;
    const cause = e.cause?.code ?? e.cause?.message ?? e.message;
    return new InnerApiError(`Dify inner API is unreachable at ${this.options.baseUrl}: ${cause}`);
  }
}

/** `{data, error}` → data, as upstream's Request/StreamResponse accept it. */
function dataOf(json: unknown): unknown {
  const parsed = answerSchema.safeParse(json);
  if (!parsed.success) throw new InnerApiError("Dify inner API answer is not a {data, error} document");
  if (parsed.data.error) throw new InnerApiError(`request failed: ${parsed.data.error}`);
  if (parsed.data.data === undefined || parsed.data.data === null) throw new InnerApiError("data is nil");
  return parsed.data.data;
}

const snippet = (text: string) => (text.trim() ? `: ${text.trim().slice(0, 300)}` : "");

/** The JSON documents of a streamed answer, in either framing. */
export async function* splitDocuments(chunks: AsyncIterable<Uint8Array>, maxBytes: number): AsyncGenerator<string> {
  const reader = new ByteReader(chunks);
  const first = await reader.peek();
  if (first === undefined) return;
  if (first === FRAME_MAGIC) yield* readFrames(reader, maxBytes);
  else yield* readLines(reader, maxBytes);
}

/**
 * Length-prefixed frames: magic (1 byte), reserved (1), header length (uint16 = 10), then a
 * 10-byte header whose first 4 bytes are the data length (uint32), then the data.
 */
async function* readFrames(reader: ByteReader, maxBytes: number): AsyncGenerator<string> {
  for (;;) {
    const head = await reader.read(4);
    if (head === undefined) return;
    if (head[0] !== FRAME_MAGIC) throw new InnerApiError(`magic number mismatch: ${head[0]}`);
    const headerLength = head.readUInt16LE(2);
    if (headerLength !== FRAME_HEADER_BYTES) throw new InnerApiError(`header length mismatch: ${headerLength}`);
    const header = await reader.read(headerLength);
    if (header === undefined) throw new InnerApiError("failed to read header");
    const length = header.readUInt32LE(0);
    if (length > maxBytes) throw new InnerApiError(`data length is too long: ${length}`);
    const data = length === 0 ? Buffer.alloc(0) : await reader.read(length);
    if (data === undefined) throw new InnerApiError("failed to read data");
    yield data.toString("utf8");
  }
}

/** Line framing: blank lines and `event:` lines skipped, an optional `data:` prefix removed. */
async function* readLines(reader: ByteReader, maxBytes: number): AsyncGenerator<string> {
  for (;;) {
    const line = await reader.readLine(maxBytes);
    if (line === undefined) return;
    let text = line.toString("utf8");
    if (text.startsWith("data:")) text = text.slice(5);
    if (text.startsWith("event:")) continue;
    text = text.trim();
    if (text) yield text;
  }
}

/** Pull-based reads over a chunk stream. */
class ByteReader {
  private buffer = Buffer.alloc(0);
  private done = false;
  private readonly source: AsyncIterator<Uint8Array>;

  constructor(chunks: AsyncIterable<Uint8Array>) {
    this.source = chunks[Symbol.asyncIterator]();
  }

  private async fill(): Promise<boolean> {
    if (this.done) return false;
    const next = await this.source.next();
    if (next.done) {
      this.done = true;
      return false;
    }
    this.buffer = Buffer.concat([this.buffer, Buffer.from(next.value)]);
    return true;
  }

  async peek(): Promise<number | undefined> {
    while (this.buffer.length === 0) if (!(await this.fill())) return undefined;
    return this.buffer[0];
  }

  /** Exactly n bytes, or undefined at a clean end before the first byte; a short tail throws. */
  async read(n: number): Promise<Buffer | undefined> {
    while (this.buffer.length < n) {
      if (!(await this.fill())) {
        if (this.buffer.length === 0) return undefined;
        throw new InnerApiError("Dify inner API stream ended in the middle of a frame");
      }
    }
    const out = this.buffer.subarray(0, n);
    this.buffer = this.buffer.subarray(n);
    return out;
  }

  async readLine(maxBytes: number): Promise<Buffer | undefined> {
    for (;;) {
      const at = this.buffer.indexOf(0x0a);
      if (at >= 0) {
        const line = this.buffer.subarray(0, at);
        this.buffer = this.buffer.subarray(at + 1);
        return line.at(-1) === 0x0d ? line.subarray(0, -1) : line;
      }
      if (this.buffer.length > maxBytes) throw new InnerApiError(`line is too long: ${this.buffer.length}`);
      if (!(await this.fill())) {
        if (this.buffer.length === 0) return undefined;
        const rest = this.buffer;
        this.buffer = Buffer.alloc(0);
        return rest;
      }
    }
  }
}
