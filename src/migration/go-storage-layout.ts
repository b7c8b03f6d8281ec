/**
 * Where the Go daemon keeps files in its plugin storage (a local directory or a bucket; keys
 * are the same in both). From langgenius/dify-plugin-daemon at commit bdb5642a19009c944b78eca12f3d176801a4a8be:
 * - packages: internal/core/plugin_manager/media_transport/package_bucket.go saves each uploaded
 *   package as `<PLUGIN_PACKAGE_CACHE_PATH>/<unique identifier>`; installed_bucket.go keeps the
 *   installed copy at `<PLUGIN_INSTALLED_PATH>/<unique identifier>` (the identifier's `/` makes
 *   an author directory);
 * - plugin key-value storage: internal/core/persistence/wrapper.go stores each value at
 *   `<PERSISTENCE_STORAGE_PATH>/<tenant id>/<plugin id>/<path.Clean(key)>`, and
 *   persistence.go counts the bytes per tenant and plugin in the tenant_storages table.
 */
import { posix } from "node:path";

export interface GoStorageLayout {
  /** PLUGIN_INSTALLED_PATH (upstream default `plugin`). */
  installedPath: string;
  /** PLUGIN_PACKAGE_CACHE_PATH (upstream default `plugin_packages`). */
  packageCachePath: string;
  /** PERSISTENCE_STORAGE_PATH (upstream default `persistence`). */
  persistencePath: string;
}

/** Go's path.Join / filepath.Join on Linux: joined and cleaned, "" parts dropped. */
const join = (...parts: string[]) => posix.join(...parts.filter((p) => p !== ""));

/** The keys a package may be found under, in the order they are tried. */
export function packageKeys(layout: GoStorageLayout, uniqueIdentifier: string): string[] {
  return [join(layout.packageCachePath, uniqueIdentifier), join(layout.installedPath, uniqueIdentifier)];
}

/** The prefix (ending in `/`) under which one tenant's storage values live, for all plugins. */
export function tenantStoragePrefix(layout: GoStorageLayout, tenantId: string): string {
  return `${join(layout.persistencePath, tenantId)}/`;
}

/**
 * Splits the keys found under a tenant's prefix among that tenant's plugins: each goes to the
 * plugin whose id is the longest leading directory match (plugin ids contain `/`, so `a/b` and
 * `a/b/c` could otherwise both claim `a/b/c/key`). The rest belong to no known plugin.
 */
export function assignStorageKeys(
  tenantPrefix: string,
  objectKeys: readonly string[],
  pluginIds: readonly string[],
): { byPlugin: Map<string, string[]>; unassigned: string[] } {
  const byLength = [...pluginIds].sort((a, b) => b.length - a.length);
  const byPlugin = new Map<string, string[]>(pluginIds.map((id) => [id, []]));
  const unassigned: string[] = [];
  for (const objectKey of objectKeys) {
    const relative = objectKey.startsWith(tenantPrefix) ? objectKey.slice(tenantPrefix.length) : undefined;
    const owner = relative === undefined ? undefined : byLength.find((id) => relative.startsWith(`${id}/`));
    if (relative === undefined || owner === undefined || relative.length === owner.length + 1) {
      unassigned.push(objectKey);
      continue;
    }
    byPlugin.get(owner)!.push(relative.slice(owner.length + 1));
  }
  return { byPlugin, unassigned };
}
