/** Which plugin a tenant-scoped dispatch (`/plugin/{tenant}/dispatch/*`) runs. */

import { badRequest, DaemonError, pluginNotFound } from "../domain/errors.js";
import { isUniqueIdentifier, type PluginUniqueIdentifier } from "../domain/identifier.js";
import { type DaemonRequest, header } from "../http/daemon-request.js";
import type { Installations } from "../stores/installations.js";

/**
 * The identifier of the plugin X-Plugin-ID names, through the tenant's installation, answered as
 * upstream's FetchPluginInstallation middleware answers (internal/server/middleware.go,
 * langgenius/dify-plugin-daemon@bdb5642a).
 */
export async function installedIdentifier(
  installations: Installations,
  req: DaemonRequest,
): Promise<PluginUniqueIdentifier> {
  const pluginId = header(req, "x-plugin-id");
  if (!pluginId) throw badRequest("plugin_id is required").withStatus(400);
  const installed = await installations.installedIdentifier(req.params.tenant_id ?? "", pluginId);
  if (installed === undefined) throw pluginNotFound().withStatus(404);
  if (!isUniqueIdentifier(installed)) {
    throw new DaemonError("PluginUniqueIdentifierError", "invalid plugin unique identifier").withStatus(400);
  }
  return installed;
}
