/**
 * The file of a package or bundle upload, refused the way upstream's UploadPlugin / UploadBundle
 * refuse it (internal/server/controllers/plugins.go, langgenius/dify-plugin-daemon@bdb5642a):
 * whatever keeps `c.FormFile` from producing the file — no multipart body, a malformed one, no
 * such field — is HTTP 200 with a -400 envelope, never an HTTP 400.
 */
import { badRequest, DaemonError } from "../domain/errors.js";
import type { DaemonRequest } from "../http/daemon-request.js";
import { parseMultipart } from "../http/multipart.js";

export interface UploadedFile {
  file: Buffer;
  fields: Map<string, string>;
}

export async function uploadedFile(req: DaemonRequest, field: string, maxBytes: number): Promise<UploadedFile> {
  let form: Awaited<ReturnType<typeof parseMultipart>>;
  try {
    form = await parseMultipart(req, maxBytes);
  } catch (err) {
    if (err instanceof DaemonError && err.errorType === "PluginDaemonBadRequestError" && err.httpStatus === 400) {
      throw badRequest(err.message);
    }
    throw err;
  }
  const file = form.files.get(field);
  // Go's http.ErrMissingFile, which upstream passes on as the message.
  if (!file) throw badRequest("http: no such file");
  return { file, fields: form.fields };
}
