/**
 * multipart/form-data bodies (package and bundle uploads), parsed with busboy under a size cap.
 * On the local daemon the body streams in (DaemonRequest.bodyStream) and each file is collected
 * once, into a buffer sized from Content-Length when it is known; on AWS the body is a Buffer.
 * busboy is loaded on the first upload, like the package reader the upload goes on to.
 */
import type { Readable } from "node:stream";
import { badRequest, DaemonError } from "../domain/errors.js";
import { type DaemonRequest, header } from "./daemon-request.js";

export interface MultipartForm {
  files: Map<string, Buffer>;
  fields: Map<string, string>;
}

export async function parseMultipart(req: DaemonRequest, maxFileBytes: number): Promise<MultipartForm> {
  const contentType = header(req, "content-type") ?? "";
  if (!contentType.toLowerCase().startsWith("multipart/form-data")) {
    throw badRequest("expected a multipart/form-data body").withStatus(400);
  }
  const { default: busboy } = await import("busboy");
  let parser: ReturnType<typeof busboy>;
  try {
    parser = busboy({
      headers: { "content-type": contentType },
      limits: { fileSize: maxFileBytes, fields: 32, files: 4 },
    });
  } catch (err) {
    // busboy refuses a header without a boundary before reading anything.
    throw badRequest(`malformed multipart body: ${(err as Error).message}`).withStatus(400);
  }
  const declared = Number(header(req, "content-length"));
  // Only the first file can use it: a body holds at most Content-Length bytes of files in all.
  let sizeHint = Number.isSafeInteger(declared) && declared > 0 ? Math.min(declared, maxFileBytes) : undefined;
  return new Promise((resolve, reject) => {
    const form: MultipartForm = { files: new Map(), fields: new Map() };
    let failure: Error | undefined;
    const fail = (err: Error) => {
      failure ??= err;
    };
    parser.on("file", (name, stream) => {
      const file = new FileCollector(sizeHint);
      sizeHint = undefined;
      stream.on("data", (chunk: Buffer) => file.add(chunk));
      stream.on("limit", () => fail(badRequest("file size exceeds the maximum limit")));
      stream.on("end", () => form.files.set(name, file.bytes()));
    });
    parser.on("field", (name, value) => form.fields.set(name, value));
    parser.on("error", (err: Error) => reject(badRequest(`malformed multipart body: ${err.message}`).withStatus(400)));
    parser.on("close", () => (failure ? reject(failure) : resolve(form)));
    if (req.bodyStream) pipeInto(req.bodyStream, parser, reject);
    else parser.end(req.body);
  });
}

/** Feeds the request stream to the parser; a failed read (too large, too slow, gone) fails the form. */
function pipeInto(source: Readable, parser: NodeJS.WritableStream, reject: (err: Error) => void): void {
  source.once("error", (err: Error) => {
    reject(
      err instanceof DaemonError ? err : badRequest(`reading the request body failed: ${err.message}`).withStatus(400),
    );
  });
  source.pipe(parser);
}

/**
 * A file's bytes, copied once: into one buffer of the expected size when the request said how
 * big it is, or into chunks joined at the end otherwise.
 */
class FileCollector {
  private buffer: Buffer | undefined;
  private length = 0;
  private readonly chunks: Buffer[] = [];

  constructor(sizeHint: number | undefined) {
    if (sizeHint) this.buffer = Buffer.allocUnsafe(sizeHint);
  }

  add(chunk: Buffer): void {
    if (this.buffer && this.length + chunk.length <= this.buffer.length) {
      chunk.copy(this.buffer, this.length);
    } else {
      if (this.buffer) {
        // More than announced: fall back to chunks.
        this.chunks.push(this.buffer.subarray(0, this.length));
        this.buffer = undefined;
      }
      this.chunks.push(chunk);
    }
    this.length += chunk.length;
  }

  bytes(): Buffer {
    if (this.buffer) return this.buffer.subarray(0, this.length);
    return this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks, this.length);
  }
}
