/**
 * The metadata store, seen as the single-table design both adapters share
 * (docs/table-design.md): items addressed by partition key + sort key, one optional secondary
 * index, optional expiry, and atomic conditional batches. Repositories in src/stores build
 * packages, installations, tasks, endpoints and storage on top of it.
 * Adapters: DynamoDB (AWS) and SQLite on local disk (local daemon).
 */
export interface Item {
  pk: string;
  sk: string;
  /** Secondary index (GSI1) keys; both or neither. */
  gsi1pk?: string;
  gsi1sk?: string;
  /** Epoch seconds after which the item is treated as gone (DynamoDB TTL is lazy, so readers filter too). */
  expiresAt?: number;
  /** Bumped on every put; conditions can require the version read earlier. */
  version?: number;
  data: Record<string, unknown>;
}

export type ItemKey = Pick<Item, "pk" | "sk">;

export type Condition = { kind: "notExists" } | { kind: "exists" } | { kind: "versionIs"; version: number };

export type WriteOp =
  | { op: "put"; item: Item; condition?: Condition }
  | { op: "delete"; key: ItemKey; condition?: Condition };

export interface QueryOptions {
  /** Query GSI1 instead of the table (pk then means gsi1pk, skPrefix applies to gsi1sk). */
  index?: "gsi1";
  skPrefix?: string;
  descending?: boolean;
  limit?: number;
}

/** A write whose condition did not hold; nothing of the batch was written. */
export class ConditionFailedError extends Error {
  constructor(message = "condition failed") {
    super(message);
    this.name = "ConditionFailedError";
  }
}

export interface ItemStore {
  get(key: ItemKey): Promise<Item | undefined>;
  query(pk: string, options?: QueryOptions): Promise<Item[]>;
  /** All ops succeed or none do; throws ConditionFailedError when a condition fails. */
  write(ops: WriteOp[]): Promise<void>;
  /**
   * A value that changes whenever a write, by this process or any other, may have changed an
   * item: readers may reuse what they derived from items while it stays the same. Absent where
   * the store cannot tell without a round trip (DynamoDB).
   */
  changeStamp?(): string;
}
