/**
 * multipart/form-data bodies (package and bundle uploads), parsed with busboy under a size cap.
 * busboy is loaded on the first upload, like the package reader the upload goes on to.
 */
import { badRequest } from "../domain/errors.js";
import { header, type DaemonRequest } from "./daemon-request.js";

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
  return new Promise((resolve, reject) => {
    const form: MultipartForm = { files: new Map(), fields: new Map() };
    let failure: Error | undefined;
    const parser = busboy({ headers: { "content-type": contentType }, limits: { fileSize: maxFileBytes, fields: 32, files: 4 } });
    parser.on("file", (name, stream) => {
      const parts: Buffer[] = [];
      stream.on("data", (chunk: Buffer) => parts.push(chunk));
      stream.on("limit", () => {
        failure ??= badRequest("file size exceeds the maximum limit");
      });
      stream.on("end", () => form.files.set(name, Buffer.concat(parts)));
    });
    parser.on("field", (name, value) => form.fields.set(name, value));
    parser.on("error", (err: Error) => reject(badRequest(`malformed multipart body: ${err.message}`).withStatus(400)));
    parser.on("close", () => (failure ? reject(failure) : resolve(form)));
    parser.end(req.body);
  });
}
