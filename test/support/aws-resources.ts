/**
 * AWS resources for integration tests, shaped exactly like the ones the CDK app creates
 * (docs/table-design.md), plus the endpoint the tests talk to.
 */
import { randomBytes } from "node:crypto";
import {
  CreateTableCommand,
  type CreateTableCommandInput,
  type DynamoDBClient,
  UpdateTimeToLiveCommand,
  waitUntilTableExists,
} from "@aws-sdk/client-dynamodb";
import { CreateBucketCommand, type S3Client } from "@aws-sdk/client-s3";
import { startAwsEmulator } from "../../src/aws-local/moto-server.js";

/** The metadata table: string keys pk/sk, GSI gsi1 (gsi1pk/gsi1sk) projecting everything, on demand. */
export function itemTableDefinition(tableName: string): CreateTableCommandInput {
  return {
    TableName: tableName,
    BillingMode: "PAY_PER_REQUEST",
    AttributeDefinitions: [
      { AttributeName: "pk", AttributeType: "S" },
      { AttributeName: "sk", AttributeType: "S" },
      { AttributeName: "gsi1pk", AttributeType: "S" },
      { AttributeName: "gsi1sk", AttributeType: "S" },
    ],
    KeySchema: [
      { AttributeName: "pk", KeyType: "HASH" },
      { AttributeName: "sk", KeyType: "RANGE" },
    ],
    GlobalSecondaryIndexes: [
      {
        IndexName: "gsi1",
        KeySchema: [
          { AttributeName: "gsi1pk", KeyType: "HASH" },
          { AttributeName: "gsi1sk", KeyType: "RANGE" },
        ],
        Projection: { ProjectionType: "ALL" },
      },
    ],
  };
}

/** The time-to-live attribute DynamoDB sweeps (epoch seconds). */
export const TTL_ATTRIBUTE = "ttl";

export async function createTestTable(client: DynamoDBClient, name: string): Promise<void> {
  await client.send(new CreateTableCommand(itemTableDefinition(name)));
  await waitUntilTableExists({ client, maxWaitTime: 60 }, { TableName: name });
  await client.send(
    new UpdateTimeToLiveCommand({
      TableName: name,
      TimeToLiveSpecification: { AttributeName: TTL_ATTRIBUTE, Enabled: true },
    }),
  );
}

export async function createTestBucket(client: S3Client, name: string): Promise<void> {
  await client.send(new CreateBucketCommand({ Bucket: name }));
}

/** A name no other test run uses, valid for both tables and buckets (lowercase, digits, dashes). */
export function uniqueResourceName(purpose: string): string {
  return `test-${purpose}-${Date.now().toString(36)}-${randomBytes(4).toString("hex")}`;
}

export interface AwsTestEndpoint {
  /** Client settings for the endpoint: emulator credentials and region. */
  clientConfig: {
    endpoint: string;
    region: string;
    credentials: { accessKeyId: string; secretAccessKey: string };
  };
  /** Stops the emulator when this file started its own; a no-op for the run's shared one. */
  release(): Promise<void>;
}

/**
 * The run's emulator when the global setup announced one through AWS_ENDPOINT_URL, otherwise a
 * private emulator for this test file.
 */
export async function awsTestEndpoint(): Promise<AwsTestEndpoint> {
  const shared = process.env.AWS_ENDPOINT_URL;
  const emulator = shared ? undefined : await startAwsEmulator();
  return {
    clientConfig: {
      endpoint: shared ?? (emulator as { endpoint: string }).endpoint,
      region: "us-east-1",
      // An emulator accepts any credentials; fixed ones make sure no real account is ever used.
      credentials: { accessKeyId: "test", secretAccessKey: "test" },
    },
    release: async () => emulator?.stop(),
  };
}
