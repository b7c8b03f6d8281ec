/**
 * Orders strings by their UTF-16 code units, the same everywhere. `localeCompare` would depend on
 * the process's locale and load ICU's collation data (about 3 MiB resident) on its first call,
 * for keys that are ASCII anyway (ISO timestamps, ids, paths).
 */
export const compareText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
