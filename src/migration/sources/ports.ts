/** What the migration needs from the Go daemon's side: its database and its plugin storage. */
import type { GoSnapshot } from "../go-rows.js";

export interface GoDatabase {
  /** Where it reads from, for progress and the report (no secrets). */
  readonly description: string;
  /** Every table the migration reads, from one consistent read-only snapshot. */
  snapshot(): Promise<GoSnapshot>;
  close(): Promise<void>;
}

export interface GoStorage {
  readonly description: string;
  /** Undefined when no file/object has this key. */
  read(key: string): Promise<Uint8Array | undefined>;
  /** Every file/object key under `prefix` (which ends in `/`), in no particular order. */
  list(prefix: string): Promise<string[]>;
}
