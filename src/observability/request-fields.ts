/** The log fields a request names itself: its tenant (path) and plugin (Dify's headers). */
import { type DaemonRequest, header } from "../http/daemon-request.js";
import type { LogFields } from "./log-context.js";

export function requestLogFields(req: DaemonRequest): LogFields {
  const uid = header(req, "x-plugin-unique-identifier");
  return {
    tenant_id: req.params.tenant_id,
    plugin_id: header(req, "x-plugin-id") ?? (uid ? uid.split(":")[0] : undefined),
    plugin_unique_identifier: uid,
  };
}
