import { DescribeTableCommand, DescribeTimeToLiveCommand, type DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { type DynamoDBDocumentClient, GetCommand, PutCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDynamoDbClient, createDynamoDbDocumentClient } from "../../src/adapters/aws/clients.js";
import { DynamoDbItemStore } from "../../src/adapters/aws/dynamodb-item-store.js";
import {
  type AwsTestEndpoint,
  awsTestEndpoint,
  createTestTable,
  uniqueResourceName,
} from "../support/aws-resources.js";
import { itemStoreContract } from "./item-store.contract.js";
import { runtimeClaimsContract } from "./runtime-claims.contract.js";

let endpoint: AwsTestEndpoint;
let client: DynamoDBClient;
let documents: DynamoDBDocumentClient;
let store: DynamoDbItemStore;
const tableName = uniqueResourceName("items");

beforeAll(async () => {
  endpoint = await awsTestEndpoint();
  client = createDynamoDbClient(endpoint.clientConfig);
  documents = createDynamoDbDocumentClient(client);
  await createTestTable(client, tableName);
  store = new DynamoDbItemStore({ tableName, client: documents });
});

afterAll(async () => {
  client?.destroy();
  await endpoint?.release();
});

describe("DynamoDbItemStore", () => {
  itemStoreContract(() => store);
  runtimeClaimsContract(() => store);

  it("runs on a table shaped as the design says: pk/sk, gsi1 projecting all, TTL on ttl", async () => {
    const { Table } = await client.send(new DescribeTableCommand({ TableName: tableName }));
    expect(Table?.KeySchema).toEqual([
      { AttributeName: "pk", KeyType: "HASH" },
      { AttributeName: "sk", KeyType: "RANGE" },
    ]);
    expect(Table?.GlobalSecondaryIndexes?.[0]).toMatchObject({
      IndexName: "gsi1",
      KeySchema: [
        { AttributeName: "gsi1pk", KeyType: "HASH" },
        { AttributeName: "gsi1sk", KeyType: "RANGE" },
      ],
      Projection: { ProjectionType: "ALL" },
    });
    const ttl = await client.send(new DescribeTimeToLiveCommand({ TableName: tableName }));
    expect(ttl.TimeToLiveDescription).toMatchObject({ AttributeName: "ttl", TimeToLiveStatus: "ENABLED" });
  });

  it("stores small data as a browsable native map with ttl and version attributes", async () => {
    const key = { pk: "layout#native", sk: "item" };
    await store.write([
      { op: "put", item: { ...key, gsi1pk: "g", gsi1sk: "s", expiresAt: 2_000_000_000, data: { a: [1, "b"] } } },
    ]);
    const { Item } = await documents.send(new GetCommand({ TableName: tableName, Key: key }));
    expect(Item).toEqual({ ...key, gsi1pk: "g", gsi1sk: "s", ttl: 2_000_000_000, v: 1, data: { a: [1, "b"] } });
  });

  it("stores data over 100 KB gzip-compressed in dataz instead of data", async () => {
    const key = { pk: "layout#compressed", sk: "item" };
    const data = { text: "plugin declaration ".repeat(10_000) };
    await store.write([{ op: "put", item: { ...key, data } }]);
    const { Item } = await documents.send(new GetCommand({ TableName: tableName, Key: key }));
    expect(Item?.data).toBeUndefined();
    expect(Item?.dataz).toBeInstanceOf(Uint8Array);
    expect((Item?.dataz as Uint8Array).byteLength).toBeLessThan(10 * 1024);

    // Shrinking the data switches back to a native map and drops the compressed copy.
    await store.write([{ op: "put", item: { ...key, data: { small: true } } }]);
    const { Item: after } = await documents.send(new GetCommand({ TableName: tableName, Key: key }));
    expect(after).toEqual({ ...key, v: 2, data: { small: true } });
  });

  it("refuses to read an item that does not follow the table design", async () => {
    const key = { pk: "layout#foreign", sk: "item" };
    await documents.send(new PutCommand({ TableName: tableName, Item: { ...key, data: "not a map" } }));
    await expect(store.get(key)).rejects.toThrow(/malformed item in table \(pk=layout#foreign, sk=item\)/);
  });
});
