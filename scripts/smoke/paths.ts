/** The paths the smoke test checks, in the order it checks them (each prints a PASS or FAIL line). */
export const SMOKE_PATHS = [
  "health",
  "auth",
  "upload",
  "install",
  "stream",
  "backwards",
  "endpoint",
  "storage",
  "large-request",
  "uninstall",
] as const;
