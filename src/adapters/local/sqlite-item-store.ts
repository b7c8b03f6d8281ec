/**
 * ItemStore on an embedded SQLite database, the local daemon's metadata store. One table mirrors
 * the DynamoDB single-table design (docs/table-design.md) and follows the same rules:
 * - Version: every successful put stores `v = (stored v, or 0 when absent) + 1`; `item.version`
 *   given to a put is ignored. `versionIs` compares against the stored `v`.
 * - Expiry: an item is gone once `now >= expiresAt`, for reads and for conditions alike. Expired
 *   rows are also deleted when the store opens and by `deleteExpired()`.
 * - A batch holds at most 100 operations on distinct keys (DynamoDB's transaction limit, kept here
 *   so code that works locally works on AWS), written in one SQLite transaction.
 * Keys sort by UTF-8 bytes (SQLite's BINARY collation), as DynamoDB sorts string keys.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import {
  type Condition,
  ConditionFailedError,
  type Item,
  type ItemKey,
  type ItemStore,
  type QueryOptions,
  type WriteOp,
} from "../../ports/item-store.js";
import { checkBatch, isLive, nowSeconds } from "../item-rules.js";

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS items (
    pk TEXT NOT NULL,
    sk TEXT NOT NULL,
    gsi1pk TEXT,
    gsi1sk TEXT,
    expires_at REAL,
    v INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (pk, sk)
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS items_gsi1 ON items (gsi1pk, gsi1sk) WHERE gsi1pk IS NOT NULL;
  CREATE INDEX IF NOT EXISTS items_expiry ON items (expires_at) WHERE expires_at IS NOT NULL;
`;

/** A row as read back; anything else means the file was changed behind the store's back. */
interface Row {
  pk: string;
  sk: string;
  gsi1pk: string | null;
  gsi1sk: string | null;
  expires_at: number | null;
  v: number;
  data: string;
}

const isText = (v: unknown): v is string => typeof v === "string";
const isTextOrNull = (v: unknown): v is string | null => v === null || typeof v === "string";
const isNumberOrNull = (v: unknown): v is number | null => v === null || (typeof v === "number" && Number.isFinite(v));

/**
 * Checks a row by hand (every read passes here, a schema library costs more than the read): the
 * columns' types, and an item's data as a JSON object (copied as a record is, without `__proto__`).
 */
function checkedRow(raw: unknown): Row {
  const r = raw as Record<string, unknown> | undefined;
  if (
    typeof r !== "object" ||
    r === null ||
    !isText(r.pk) ||
    !isText(r.sk) ||
    !isTextOrNull(r.gsi1pk) ||
    !isTextOrNull(r.gsi1sk) ||
    !isNumberOrNull(r.expires_at) ||
    !Number.isSafeInteger(r.v) ||
    !isText(r.data)
  ) {
    throw new Error("malformed row in the metadata store (the file was changed outside the daemon)");
  }
  return r as unknown as Row;
}

function itemData(text: string): Record<string, unknown> {
  const data: unknown = JSON.parse(text);
  if (typeof data !== "object" || data === null || Array.isArray(data))
    throw new Error("malformed item data in the metadata store (not a JSON object)");
  const record = data as Record<string, unknown>;
  if (Object.hasOwn(record, "__proto__")) {
    const copy: Record<string, unknown> = {};
    for (const key of Object.keys(record)) if (key !== "__proto__") copy[key] = record[key];
    return copy;
  }
  return record;
}

export interface SqliteItemStoreOptions {
  /** Database file, or ":memory:" for a throwaway store. */
  filename: string;
}

export class SqliteItemStore implements ItemStore {
  private readonly db: Database.Database;
  private readonly queries = new Map<string, Database.Statement>();
  private readonly selectOne: Database.Statement;
  private readonly upsert: Database.Statement;
  private readonly remove: Database.Statement;
  private readonly removeExpired: Database.Statement;
  private readonly dataVersion: Database.Statement;
  /** Writes through this connection: SQLite's data_version counts only other connections' commits. */
  private ownWrites = 0;

  /** The store kept in `<dataDir>/metadata.sqlite`, creating the directory when needed. */
  static inDirectory(dataDir: string): SqliteItemStore {
    mkdirSync(dataDir, { recursive: true });
    return new SqliteItemStore({ filename: join(dataDir, "metadata.sqlite") });
  }

  constructor(options: SqliteItemStoreOptions) {
    this.db = new Database(options.filename);
    // WAL lets readers run while a write commits; NORMAL sync is durable across process crashes.
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = NORMAL");
    this.db.pragma("busy_timeout = 5000");
    this.db.exec(SCHEMA);
    this.selectOne = this.db.prepare("SELECT * FROM items WHERE pk = ? AND sk = ?");
    this.upsert = this.db.prepare(`
      INSERT INTO items (pk, sk, gsi1pk, gsi1sk, expires_at, v, data)
      VALUES (@pk, @sk, @gsi1pk, @gsi1sk, @expiresAt, 1, @data)
      ON CONFLICT (pk, sk) DO UPDATE SET
        gsi1pk = excluded.gsi1pk, gsi1sk = excluded.gsi1sk, expires_at = excluded.expires_at,
        v = items.v + 1, data = excluded.data`);
    this.remove = this.db.prepare("DELETE FROM items WHERE pk = ? AND sk = ?");
    this.removeExpired = this.db.prepare("DELETE FROM items WHERE expires_at <= ?");
    this.dataVersion = this.db.prepare("PRAGMA data_version").pluck();
    this.deleteExpired();
  }

  async get(key: ItemKey): Promise<Item | undefined> {
    const row = this.selectOne.get(key.pk, key.sk);
    if (row === undefined) return undefined;
    const item = toItem(row);
    return isLive(item, nowSeconds()) ? item : undefined;
  }

  async query(pk: string, options: QueryOptions = {}): Promise<Item[]> {
    const { limit } = options;
    if (limit !== undefined && limit <= 0) return [];
    const prefix = options.skPrefix ? options.skPrefix : undefined;
    const upper = prefix === undefined ? undefined : successor(prefix);
    const statement = this.queryStatement(
      options.index === "gsi1",
      prefix !== undefined,
      upper !== undefined,
      options.descending === true,
    );
    const rows = statement.all({ pk, prefix, upper, now: nowSeconds(), limit: limit ?? -1 });
    return rows.map(toItem);
  }

  async write(ops: WriteOp[]): Promise<void> {
    checkBatch(ops);
    if (ops.length === 0) return;
    this.ownWrites += 1;
    // better-sqlite3 transactions roll back when the function throws.
    this.db.transaction(() => {
      const now = nowSeconds();
      ops.forEach((op, index) => {
        const key = op.op === "put" ? op.item : op.key;
        if (op.condition && !this.holds(op.condition, key, now)) {
          throw new ConditionFailedError(
            ops.length === 1 ? undefined : `condition failed on operation ${index} of the batch`,
          );
        }
        if (op.op === "put") this.put(op.item);
        else this.remove.run(op.key.pk, op.key.sk);
      });
    })();
  }

  /** Removes expired rows; readers never see them anyway, this only reclaims space. */
  deleteExpired(): number {
    this.ownWrites += 1;
    return this.removeExpired.run(nowSeconds()).changes;
  }

  changeStamp(): string {
    return `${this.ownWrites}:${this.dataVersion.get()}`;
  }

  close(): void {
    this.db.close();
  }

  private holds(condition: Condition, key: ItemKey, now: number): boolean {
    const row = this.selectOne.get(key.pk, key.sk);
    const current = row === undefined ? undefined : toItem(row);
    const live = current !== undefined && isLive(current, now);
    switch (condition.kind) {
      case "notExists":
        return !live;
      case "exists":
        return live;
      case "versionIs":
        return live && current.version === condition.version;
    }
  }

  private put(item: Item): void {
    this.upsert.run({
      pk: item.pk,
      sk: item.sk,
      gsi1pk: item.gsi1pk ?? null,
      gsi1sk: item.gsi1sk ?? null,
      expiresAt: item.expiresAt ?? null,
      data: JSON.stringify(item.data),
    });
  }

  /** One prepared statement per query shape, built on first use. */
  private queryStatement(
    onIndex: boolean,
    hasPrefix: boolean,
    hasUpper: boolean,
    descending: boolean,
  ): Database.Statement {
    const shape = `${onIndex}:${hasPrefix}:${hasUpper}:${descending}`;
    let statement = this.queries.get(shape);
    if (statement === undefined) {
      const [pkColumn, skColumn] = onIndex ? ["gsi1pk", "gsi1sk"] : ["pk", "sk"];
      const direction = descending ? "DESC" : "ASC";
      const where = [`${pkColumn} = @pk`, "(expires_at IS NULL OR expires_at > @now)"];
      if (hasPrefix) where.push(`${skColumn} >= @prefix`);
      if (hasUpper) where.push(`${skColumn} < @upper`);
      // On the index several items may share a sort key; the table key makes the order stable.
      const order = onIndex ? `gsi1sk ${direction}, pk ${direction}, sk ${direction}` : `sk ${direction}`;
      statement = this.db.prepare(`SELECT * FROM items WHERE ${where.join(" AND ")} ORDER BY ${order} LIMIT @limit`);
      this.queries.set(shape, statement);
    }
    return statement;
  }
}

/**
 * The smallest string greater than every string starting with `prefix` (in code point order, which
 * is UTF-8 byte order), or undefined when there is none. Lets a prefix search use the index as a range.
 */
function successor(prefix: string): string | undefined {
  const codePoints = Array.from(prefix, (char) => char.codePointAt(0) as number);
  while (codePoints.length > 0) {
    const last = (codePoints.pop() as number) + 1;
    if (last <= 0x10ffff) {
      codePoints.push(last === 0xd800 ? 0xe000 : last);
      return String.fromCodePoint(...codePoints);
    }
  }
  return undefined;
}

function toItem(raw: unknown): Item {
  const row = checkedRow(raw);
  const item: Item = { pk: row.pk, sk: row.sk, version: row.v, data: itemData(row.data) };
  if (row.gsi1pk !== null && row.gsi1sk !== null) {
    item.gsi1pk = row.gsi1pk;
    item.gsi1sk = row.gsi1sk;
  }
  if (row.expires_at !== null) item.expiresAt = row.expires_at;
  return item;
}
