/**
 * Vitest global setup: starts what the suite needs once per run. Services are started lazily by
 * the setup modules next to this file and described to tests through environment variables.
 */
export default async function setup(): Promise<() => Promise<void>> {
  const teardowns: Array<() => Promise<void>> = [];
  return async () => {
    for (const teardown of teardowns.reverse()) await teardown();
  };
}
