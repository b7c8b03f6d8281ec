/**
 * Rules both item store adapters apply the same way (docs/table-design.md): which batches are
 * valid — DynamoDB's limits, enforced locally too so code that works on the laptop works on AWS —
 * and when an item counts as expired.
 */
import type { Item, WriteOp } from "../ports/item-store.js";

/** DynamoDB's TransactWriteItems limit. */
export const MAX_BATCH_OPS = 100;

export function isLive(item: Item, now: number): boolean {
  return item.expiresAt === undefined || item.expiresAt > now;
}

export function nowSeconds(): number {
  return Date.now() / 1000;
}

/** Rejects batches DynamoDB would reject, with messages that say why. */
export function checkBatch(ops: WriteOp[]): void {
  if (ops.length > MAX_BATCH_OPS) {
    throw new RangeError(`a write batch holds at most ${MAX_BATCH_OPS} operations, got ${ops.length}`);
  }
  const seen = new Set<string>();
  for (const op of ops) {
    const key = op.op === "put" ? op.item : op.key;
    if (key.pk === "" || key.sk === "") throw new TypeError("item keys must be non-empty strings");
    const id = JSON.stringify([key.pk, key.sk]);
    if (seen.has(id)) throw new TypeError(`a write batch touches item ${id} more than once`);
    seen.add(id);
    if (op.op === "put" && (op.item.gsi1pk === undefined) !== (op.item.gsi1sk === undefined)) {
      throw new TypeError(`item ${id} sets only one of gsi1pk and gsi1sk`);
    }
    if (op.op === "put" && (op.item.gsi1pk === "" || op.item.gsi1sk === "")) {
      throw new TypeError(`item ${id} has an empty gsi1pk or gsi1sk`);
    }
  }
}
