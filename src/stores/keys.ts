/**
 * Key layout of the single-table design (docs/table-design.md). Every item type's keys are
 * built here so the layout is readable in one place.
 */
export const keys = {
  package: (uid: string) => ({ pk: `PACKAGE#${uid}`, sk: "PACKAGE" }),
  /** One item per tenant using a package: the package's reference count, queryable per package. */
  packageUse: (uid: string, tenantId: string) => ({ pk: `PACKAGE#${uid}`, sk: `USE#${tenantId}` }),
  packageUsePrefix: "USE#",
  /** Keyed by plugin id: a tenant has at most one installation of a plugin, enforced by the key. */
  installation: (tenantId: string, pluginId: string) => ({ pk: `TENANT#${tenantId}`, sk: `INSTALLATION#${pluginId}` }),
  installationPrefix: "INSTALLATION#",
  installationById: (installationId: string) => ({ gsi1pk: `INSTALLATION#${installationId}`, gsi1sk: "INSTALLATION" }),
  /** Task ids are UUIDv7, so sort-key order is creation order. */
  installTask: (tenantId: string, taskId: string) => ({ pk: `TENANT#${tenantId}`, sk: `TASK#${taskId}` }),
  installTaskPrefix: "TASK#",
  tenant: (tenantId: string) => `TENANT#${tenantId}`,
};
