import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteItemStore } from "../../src/adapters/local/sqlite-item-store.js";

/**
 * Item stores on one SQLite file in a fresh temporary directory: each `open()` is a connection of
 * its own, as the daemon's and another process's would be. `removeAll()` closes them and deletes
 * the directory.
 */
export function temporarySqliteStores(prefix: string) {
  const dataDir = mkdtempSync(join(tmpdir(), prefix));
  const opened: SqliteItemStore[] = [];
  return {
    open(): SqliteItemStore {
      const store = SqliteItemStore.inDirectory(dataDir);
      opened.push(store);
      return store;
    },
    removeAll(): void {
      for (const store of opened) store.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
