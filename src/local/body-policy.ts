/**
 * How much body each route may send the local daemon, decided from the route before a byte of
 * the body is read. Package and bundle uploads stream into the multipart parser under their own
 * limits; every other route is buffered under MAX_REQUEST_BODY_SIZE.
 *
 * Upstream's gin server sets no request-body limit at all (internal/server/http_server.go,
 * bdb5642: a bare http.Server): c.FormFile spools multipart bodies past gin's 32 MiB
 * MaxMultipartMemory to temporary files, and only then compares the file header's size with
 * MAX_PLUGIN_PACKAGE_SIZE / MAX_BUNDLE_PACKAGE_SIZE (internal/server/controllers/plugins.go).
 * JSON bodies are bound without a limit; endpoint bodies are cut at 10 MiB
 * (internal/service/endpoint.go: io.LimitReader(req.Body, 10*1024*1024)).
 */
import type { DaemonConfig } from "../config.js";
import type { Route } from "../http/router.js";

/** Room for the multipart framing and the small form fields around the file. */
const MULTIPART_OVERHEAD_BYTES = 1024 * 1024;

export interface BodyPolicy {
  /** Most bytes the body may have. */
  maxBytes: number;
  /** Package/bundle upload: streamed to the handler, and counted against MAX_CONCURRENT_UPLOADS. */
  upload: boolean;
  /** What the caller is told when the body is too large. */
  tooLargeMessage: string;
}

export function bodyPolicyFor(route: Route, config: DaemonConfig, ceiling = Number.POSITIVE_INFINITY): BodyPolicy {
  const upload = (fileBytes: number): BodyPolicy => ({
    maxBytes: Math.min(fileBytes + MULTIPART_OVERHEAD_BYTES, ceiling),
    upload: true,
    // Upstream's words for a package over its limit.
    tooLargeMessage: "file size exceeds the maximum limit",
  });
  if (route.pattern.endsWith("/install/upload/package")) return upload(config.packageLimits.maxPackageBytes);
  if (route.pattern.endsWith("/install/upload/bundle")) return upload(config.maxBundleBytes);
  const maxBytes = Math.min(config.requestLimits.maxBodyBytes, ceiling);
  return { maxBytes, upload: false, tooLargeMessage: `request body too large: at most ${maxBytes} bytes` };
}
