/**
 * The one place that builds AWS SDK v3 clients.
 *
 * What the SDK already does by itself, so it is deliberately not repeated here:
 * - endpoint overrides from `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>`
 *   (`AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_LAMBDA`) and the shared
 *   config file's `endpoint_url`, unless `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is set;
 * - the "standard" retry mode with 3 attempts (overridable with `AWS_RETRY_MODE` / `AWS_MAX_ATTEMPTS`);
 * - HTTP keep-alive (its Node handler's agents use `keepAlive: true`, 50 sockets).
 * What it lacks, and is added here:
 * - a default region (`us-east-1`) so a missing `AWS_REGION` is not a startup crash;
 * - S3 path-style addressing when an endpoint is overridden (emulators such as moto or LocalStack
 *   do not serve `<bucket>.<host>` virtual hosts);
 * - a bounded connection timeout, so an unreachable endpoint fails in seconds instead of the OS
 *   default of minutes.
 *
 * Nothing is built at import time: clients are created on first use and cached for the process,
 * which keeps Lambda cold starts cheap and reuses warm connections across invocations.
 */

import { DynamoDBClient, type DynamoDBClientConfig } from "@aws-sdk/client-dynamodb";
import { LambdaClient, type LambdaClientConfig } from "@aws-sdk/client-lambda";
import { S3Client, type S3ClientConfig } from "@aws-sdk/client-s3";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { traced } from "../../observability/tracing.js";

type Env = Record<string, string | undefined>;

const DEFAULT_REGION = "us-east-1";
const CONNECTION_TIMEOUT_MS = 5_000;

/** Settings every client shares; explicit `overrides` (tests, tools) win over the environment. */
function baseConfig(env: Env) {
  return {
    region: env.AWS_REGION || env.AWS_DEFAULT_REGION || DEFAULT_REGION,
    requestHandler: { connectionTimeout: CONNECTION_TIMEOUT_MS },
  };
}

function truthy(value: string | undefined): boolean {
  return value !== undefined && value !== "" && value.toLowerCase() !== "false";
}

/** True when S3 requests go to a configured endpoint rather than AWS's own. */
function s3EndpointOverridden(env: Env, overrides: S3ClientConfig): boolean {
  if (overrides.endpoint !== undefined) return true;
  if (truthy(env.AWS_IGNORE_CONFIGURED_ENDPOINT_URLS)) return false;
  return Boolean(env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL);
}

export function createS3Client(overrides: S3ClientConfig = {}, env: Env = process.env): S3Client {
  return traced(
    new S3Client({
      ...baseConfig(env),
      forcePathStyle: s3EndpointOverridden(env, overrides),
      ...overrides,
    }),
  );
}

export function createDynamoDbClient(overrides: DynamoDBClientConfig = {}, env: Env = process.env): DynamoDBClient {
  return traced(new DynamoDBClient({ ...baseConfig(env), ...overrides }));
}

/**
 * The document client marshals plain JS values to DynamoDB attribute values. `undefined` fields
 * are dropped (as JSON would) instead of failing the write.
 */
export function createDynamoDbDocumentClient(client: DynamoDBClient = createDynamoDbClient()): DynamoDBDocumentClient {
  return DynamoDBDocumentClient.from(client, {
    marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: false },
    unmarshallOptions: { wrapNumbers: false },
  });
}

/** Lambda calls may stream for up to 15 minutes, so no request timeout is set here. */
export function createLambdaClient(overrides: LambdaClientConfig = {}, env: Env = process.env): LambdaClient {
  // Traced (when tracing is on), a plugin call carries the trace header into the plugin function.
  return traced(new LambdaClient({ ...baseConfig(env), ...overrides }));
}

let s3: S3Client | undefined;
let dynamoDb: DynamoDBDocumentClient | undefined;
let lambda: LambdaClient | undefined;

/** The process-wide S3 client, built on first use. */
export function sharedS3Client(): S3Client {
  return (s3 ??= createS3Client());
}

/** The process-wide DynamoDB document client, built on first use. */
export function sharedDynamoDbDocumentClient(): DynamoDBDocumentClient {
  return (dynamoDb ??= createDynamoDbDocumentClient());
}

/** The process-wide Lambda client, built on first use. */
export function sharedLambdaClient(): LambdaClient {
  return (lambda ??= createLambdaClient());
}
