/**
 * ItemStore on one DynamoDB table (docs/table-design.md): `pk`/`sk` keys, GSI `gsi1` on
 * `gsi1pk`/`gsi1sk`, TTL attribute `ttl`, version `v`, and the item's data either as a native map
 * (`data`) or, when large or not representable as a DynamoDB map, as gzip-compressed JSON (`dataz`).
 *
 * Rules shared with the SQLite adapter:
 * - Version: every successful put stores `v = (stored v, or 0 when absent) + 1`; `item.version`
 *   given to a put is ignored. `versionIs` compares against the stored `v`.
 * - Expiry: an item is gone once `now >= expiresAt`, for reads and for conditions alike, even
 *   while DynamoDB's lazy TTL has not removed it yet.
 * - A batch holds at most 100 operations on distinct keys, written all-or-nothing.
 */
import { gunzipSync, gzipSync } from "node:zlib";
import {
  DeleteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  QueryCommand,
  TransactWriteCommand,
  UpdateCommand,
} from "@aws-sdk/lib-dynamodb";
import { z } from "zod";
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
import { sharedDynamoDbDocumentClient } from "./clients.js";

/** Items are capped at 400 KB; JSON bigger than this is compressed into `dataz`. */
const COMPRESS_ABOVE_BYTES = 100 * 1024;
/** DynamoDB nests documents at most 32 levels deep; `data` itself is one of them. */
const MAX_MAP_DEPTH = 30;

export interface DynamoDbItemStoreOptions {
  tableName: string;
  client?: DynamoDBDocumentClient;
}

/** What a table row must look like when read back; anything else is a corrupted or foreign item. */
const StoredItem = z
  .object({
    pk: z.string(),
    sk: z.string(),
    gsi1pk: z.string().optional(),
    gsi1sk: z.string().optional(),
    ttl: z.number().optional(),
    v: z.number().int(),
    data: z.record(z.string(), z.unknown()).optional(),
    dataz: z.instanceof(Uint8Array).optional(),
  })
  .refine((row) => (row.data === undefined) !== (row.dataz === undefined), "exactly one of data and dataz");

type Row = z.infer<typeof StoredItem>;

export class DynamoDbItemStore implements ItemStore {
  private readonly tableName: string;
  private readonly client: () => DynamoDBDocumentClient;

  constructor(options: DynamoDbItemStoreOptions) {
    this.tableName = options.tableName;
    // Resolved on first call so constructing the store at module load costs nothing.
    this.client = options.client ? () => options.client as DynamoDBDocumentClient : sharedDynamoDbDocumentClient;
  }

  async get(key: ItemKey): Promise<Item | undefined> {
    const { Item: row } = await this.client().send(
      new GetCommand({ TableName: this.tableName, Key: { pk: key.pk, sk: key.sk }, ConsistentRead: true }),
    );
    if (!row) return undefined;
    const item = toItem(row);
    return isLive(item, nowSeconds()) ? item : undefined;
  }

  async query(pk: string, options: QueryOptions = {}): Promise<Item[]> {
    const { limit } = options;
    if (limit !== undefined && limit <= 0) return [];
    const onIndex = options.index === "gsi1";
    const now = nowSeconds();
    const names: Record<string, string> = {
      "#pk": onIndex ? "gsi1pk" : "pk",
      "#sk": onIndex ? "gsi1sk" : "sk",
      "#ttl": "ttl",
    };
    const values: Record<string, unknown> = { ":pk": pk, ":now": now };
    let keyCondition = "#pk = :pk";
    if (options.skPrefix) {
      keyCondition += " AND begins_with(#sk, :prefix)";
      values[":prefix"] = options.skPrefix;
    } else {
      delete names["#sk"];
    }

    const items: Item[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.client().send(
        new QueryCommand({
          TableName: this.tableName,
          IndexName: onIndex ? "gsi1" : undefined,
          KeyConditionExpression: keyCondition,
          // Hides expired items DynamoDB has not deleted yet (its TTL sweep is lazy).
          FilterExpression: "attribute_not_exists(#ttl) OR #ttl > :now",
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
          ScanIndexForward: !options.descending,
          // GSIs only offer eventually consistent reads.
          ConsistentRead: !onIndex,
          // DynamoDB applies Limit before the filter, so this only bounds how much one page reads.
          Limit: limit === undefined ? undefined : limit - items.length,
          ExclusiveStartKey: startKey,
        }),
      );
      for (const row of page.Items ?? []) {
        const item = toItem(row);
        if (isLive(item, now)) items.push(item);
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey && (limit === undefined || items.length < limit));
    return limit === undefined ? items : items.slice(0, limit);
  }

  async write(ops: WriteOp[]): Promise<void> {
    checkBatch(ops);
    if (ops.length === 0) return;
    const now = nowSeconds();
    try {
      if (ops.length === 1) {
        await this.writeOne(ops[0] as WriteOp, now);
      } else {
        await this.client().send(
          new TransactWriteCommand({
            TransactItems: ops.map((op) =>
              op.op === "put"
                ? { Update: this.putRequest(op.item, op.condition, now) }
                : { Delete: this.deleteRequest(op.key, op.condition, now) },
            ),
          }),
        );
      }
    } catch (err) {
      throw asConditionFailed(err) ?? err;
    }
  }

  private async writeOne(op: WriteOp, now: number): Promise<void> {
    if (op.op === "put") await this.client().send(new UpdateCommand(this.putRequest(op.item, op.condition, now)));
    else await this.client().send(new DeleteCommand(this.deleteRequest(op.key, op.condition, now)));
  }

  /**
   * A put is an UpdateItem rather than a PutItem so DynamoDB itself increments `v`; attributes the
   * new item lacks are removed, so the result equals a full replacement.
   */
  private putRequest(item: Item, condition: Condition | undefined, now: number) {
    const names: Record<string, string> = { "#v": "v" };
    const values: Record<string, unknown> = { ":zero": 0, ":one": 1 };
    const set = ["#v = if_not_exists(#v, :zero) + :one"];
    const remove: string[] = [];
    const attributes: Record<string, unknown> = {
      gsi1pk: item.gsi1pk,
      gsi1sk: item.gsi1sk,
      ttl: item.expiresAt,
      data: undefined,
      dataz: undefined,
      ...encodeData(item.data),
    };
    for (const [name, value] of Object.entries(attributes)) {
      names[`#${name}`] = name;
      if (value === undefined) {
        remove.push(`#${name}`);
      } else {
        set.push(`#${name} = :${name}`);
        values[`:${name}`] = value;
      }
    }
    const expression = `SET ${set.join(", ")}${remove.length > 0 ? ` REMOVE ${remove.join(", ")}` : ""}`;
    return {
      TableName: this.tableName,
      Key: { pk: item.pk, sk: item.sk },
      UpdateExpression: expression,
      ...withCondition(condition, now, names, values),
    };
  }

  private deleteRequest(key: ItemKey, condition: Condition | undefined, now: number) {
    return {
      TableName: this.tableName,
      Key: { pk: key.pk, sk: key.sk },
      ...withCondition(condition, now, {}, {}),
    };
  }
}

/**
 * Adds the condition, with its expiry clause, to a request's expression names and values.
 * DynamoDB rejects names or values an expression does not use, so each condition brings only its own.
 */
function withCondition(
  condition: Condition | undefined,
  now: number,
  names: Record<string, string>,
  values: Record<string, unknown>,
) {
  const allNames = { ...names };
  const allValues = { ...values };
  let expression: string | undefined;
  const live = "(attribute_not_exists(#ttl) OR #ttl > :now)";
  switch (condition?.kind) {
    case undefined:
      break;
    case "notExists":
      expression = "attribute_not_exists(#pk) OR #ttl <= :now";
      Object.assign(allNames, { "#pk": "pk", "#ttl": "ttl" });
      allValues[":now"] = now;
      break;
    case "exists":
      expression = `attribute_exists(#pk) AND ${live}`;
      Object.assign(allNames, { "#pk": "pk", "#ttl": "ttl" });
      allValues[":now"] = now;
      break;
    case "versionIs":
      expression = `#v = :expected AND ${live}`;
      Object.assign(allNames, { "#v": "v", "#ttl": "ttl" });
      Object.assign(allValues, { ":expected": condition.version, ":now": now });
      break;
  }
  return {
    ConditionExpression: expression,
    ExpressionAttributeNames: Object.keys(allNames).length > 0 ? allNames : undefined,
    ExpressionAttributeValues: Object.keys(allValues).length > 0 ? allValues : undefined,
  };
}

function asConditionFailed(err: unknown): ConditionFailedError | undefined {
  if (!(err instanceof Error)) return undefined;
  if (err.name === "ConditionalCheckFailedException") return new ConditionFailedError();
  if (err.name === "TransactionCanceledException") {
    const reasons = (err as { CancellationReasons?: Array<{ Code?: string }> }).CancellationReasons ?? [];
    const failed = reasons.findIndex((reason) => reason.Code === "ConditionalCheckFailed");
    if (failed >= 0) return new ConditionFailedError(`condition failed on operation ${failed} of the batch`);
  }
  return undefined;
}

function encodeData(data: Record<string, unknown>): { data: Record<string, unknown> } | { dataz: Uint8Array } {
  const json = JSON.stringify(data);
  // Round-tripping through JSON gives both adapters the same semantics (undefined dropped, Dates
  // as strings) and a plain value the marshaller accepts.
  const plain = JSON.parse(json) as Record<string, unknown>;
  if (Buffer.byteLength(json) > COMPRESS_ABOVE_BYTES || !fitsDynamoDbMap(plain, 1)) {
    return { dataz: gzipSync(json) };
  }
  return { data: plain };
}

/**
 * Whether a JSON value survives a native DynamoDB map unchanged: numbers within DynamoDB's range
 * and JS's safe integers, no empty attribute names, bounded nesting.
 */
function fitsDynamoDbMap(value: unknown, depth: number): boolean {
  if (typeof value === "number") {
    const magnitude = Math.abs(value);
    if (Number.isInteger(value)) return Number.isSafeInteger(value);
    return magnitude >= 1e-130 && magnitude < 9.9e125;
  }
  if (value === null || typeof value !== "object") return true;
  if (depth > MAX_MAP_DEPTH) return false;
  if (Array.isArray(value)) return value.every((element) => fitsDynamoDbMap(element, depth + 1));
  return Object.entries(value).every(([name, element]) => name !== "" && fitsDynamoDbMap(element, depth + 1));
}

function toItem(raw: Record<string, unknown>): Item {
  const parsed = StoredItem.safeParse(raw);
  if (!parsed.success) {
    throw new Error(`malformed item in table (pk=${String(raw.pk)}, sk=${String(raw.sk)}): ${parsed.error.message}`);
  }
  const row: Row = parsed.data;
  const item: Item = { pk: row.pk, sk: row.sk, version: row.v, data: decodeData(row) };
  if (row.gsi1pk !== undefined && row.gsi1sk !== undefined) {
    item.gsi1pk = row.gsi1pk;
    item.gsi1sk = row.gsi1sk;
  }
  if (row.ttl !== undefined) item.expiresAt = row.ttl;
  return item;
}

function decodeData(row: Row): Record<string, unknown> {
  if (row.data !== undefined) return row.data;
  const json = gunzipSync(row.dataz as Uint8Array).toString("utf8");
  return z.record(z.string(), z.unknown()).parse(JSON.parse(json));
}
