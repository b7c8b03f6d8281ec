/**
 * Deploys a synthesised stack (stack-template.ts) onto this machine, as CloudFormation would:
 * the table, bucket and secrets into moto through the real SDK clients, with the properties the
 * template gives them; the functions and layers into the Lambda service emulator, their code the
 * assembly's asset directories; the REST API and the schedule rules as models for the local API
 * Gateway and EventBridge. IAM roles and policies, log groups, dashboards and alarms are read but
 * not created: nothing here enforces IAM or keeps metrics.
 */
import { randomBytes } from "node:crypto";
import {
  CreateTableCommand,
  type CreateTableCommandInput,
  type DynamoDBClient,
  UpdateTimeToLiveCommand,
  waitUntilTableExists,
} from "@aws-sdk/client-dynamodb";
import {
  CreateBucketCommand,
  PutBucketEncryptionCommand,
  PutBucketVersioningCommand,
  PutPublicAccessBlockCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { CreateSecretCommand, type SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import type { LambdaService } from "./lambda-service.js";
import { type RestApiModel, restApiModel } from "./rest-api-model.js";
import type { SynthesizedStack, TemplateResource } from "./stack-template.js";
import { type PhysicalResource, physicalResource, resolveValue } from "./template-values.js";

export interface DeploymentClients {
  dynamodb: DynamoDBClient;
  s3: S3Client;
  secrets: SecretsManagerClient;
  lambda: LambdaService;
}

export interface ScheduleRule {
  expression: string;
  enabled: boolean;
  functionNames: string[];
}

export interface Deployment {
  /** Physical names and ARNs by logical id. */
  physical: ReadonlyMap<string, PhysicalResource>;
  /** Secret values by secret ARN. */
  secretValues: ReadonlyMap<string, string>;
  /** Layer version ARN → its content directory (/opt). */
  layers: ReadonlyMap<string, string>;
  /** Function name by logical id. */
  functions: ReadonlyMap<string, string>;
  api: RestApiModel;
  schedules: ScheduleRule[];
}

export interface DeployOptions {
  /** A chosen value for a secret (by logical id) instead of a generated one. */
  secretValue?: (logicalId: string) => string | undefined;
}

export async function deployStack(
  stack: SynthesizedStack,
  clients: DeploymentClients,
  options: DeployOptions = {},
): Promise<Deployment> {
  const entries = Object.entries(stack.resources);
  const physical = new Map<string, PhysicalResource>(
    entries.map(([id, r]) => [id, physicalResource(stack.stackName, id, r)]),
  );
  const resolve = (value: unknown) => resolveValue(value, physical, stack.stackName);
  const props = (r: TemplateResource) => resolve(r.Properties ?? {}) as Record<string, unknown>;
  const ofType = (type: string) => entries.filter(([, r]) => r.Type === type);

  await Promise.all(
    ofType("AWS::DynamoDB::Table").map(([id, r]) => createTable(clients.dynamodb, physical.get(id)!.ref, props(r))),
  );
  await Promise.all(
    ofType("AWS::S3::Bucket").map(([id, r]) => createBucket(clients.s3, physical.get(id)!.ref, props(r))),
  );

  const secretValues = new Map<string, string>();
  for (const [id, r] of ofType("AWS::SecretsManager::Secret")) {
    const p = props(r);
    const value =
      options.secretValue?.(id) ??
      (p.SecretString as string | undefined) ??
      generatedSecret(p.GenerateSecretString as GenerateSecretString | undefined);
    const created = await clients.secrets.send(
      new CreateSecretCommand({
        Name: physical.get(id)!.attributes.Name,
        Description: p.Description as string | undefined,
        SecretString: value,
      }),
    );
    // Refs to the secret now give Secrets Manager's own ARN (with its random suffix).
    physical.get(id)!.ref = created.ARN!;
    secretValues.set(created.ARN!, value);
  }

  const layers = new Map<string, string>();
  for (const [id, r] of ofType("AWS::Lambda::LayerVersion")) {
    const content = props(r).Content as { S3Key: string };
    layers.set(physical.get(id)!.ref, stack.assetDirectory(content.S3Key));
  }

  const retries = new Map<string, number>();
  for (const [, r] of ofType("AWS::Lambda::EventInvokeConfig")) {
    const p = props(r);
    if (typeof p.MaximumRetryAttempts === "number") retries.set(String(p.FunctionName), p.MaximumRetryAttempts);
  }
  const functions = new Map<string, string>();
  for (const [id, r] of ofType("AWS::Lambda::Function")) {
    const p = props(r);
    const name = physical.get(id)!.ref;
    const code = p.Code as { S3Key?: string };
    if (!code.S3Key) throw new Error(`function ${id} has no asset code`);
    clients.lambda.register(
      {
        FunctionName: name,
        Runtime: p.Runtime,
        Handler: p.Handler,
        Role: p.Role,
        Description: p.Description,
        MemorySize: p.MemorySize ?? 128,
        Timeout: p.Timeout ?? 3,
        Architectures: p.Architectures,
        Environment: p.Environment,
        Layers: p.Layers,
      },
      {
        directory: stack.assetDirectory(code.S3Key),
        asyncRetries: retries.get(name),
        reservedConcurrency:
          typeof p.ReservedConcurrentExecutions === "number" ? p.ReservedConcurrentExecutions : undefined,
      },
    );
    functions.set(id, name);
  }

  const schedules: ScheduleRule[] = ofType("AWS::Events::Rule").flatMap(([, r]) => {
    const p = props(r);
    if (typeof p.ScheduleExpression !== "string") return [];
    const targets = (p.Targets as Array<{ Arn: string }> | undefined) ?? [];
    const functionNames = targets.flatMap((t) => /:function:([^:]+)$/.exec(t.Arn)?.[1] ?? []);
    return [{ expression: p.ScheduleExpression, enabled: p.State !== "DISABLED", functionNames }];
  });

  return { physical, secretValues, layers, functions, api: restApiModel(stack.resources, resolve), schedules };
}

async function createTable(client: DynamoDBClient, name: string, p: Record<string, unknown>): Promise<void> {
  const input = {
    TableName: name,
    AttributeDefinitions: p.AttributeDefinitions,
    KeySchema: p.KeySchema,
    BillingMode: p.BillingMode,
    ProvisionedThroughput: p.ProvisionedThroughput,
    GlobalSecondaryIndexes: p.GlobalSecondaryIndexes,
    LocalSecondaryIndexes: p.LocalSecondaryIndexes,
    SSESpecification: (p.SSESpecification as { SSEEnabled?: boolean } | undefined)?.SSEEnabled
      ? { Enabled: true }
      : undefined,
    DeletionProtectionEnabled: p.DeletionProtectionEnabled,
  } as CreateTableCommandInput;
  await client.send(new CreateTableCommand(input));
  await waitUntilTableExists({ client, maxWaitTime: 60 }, { TableName: name });
  const ttl = p.TimeToLiveSpecification as { AttributeName: string; Enabled: boolean } | undefined;
  if (ttl?.Enabled) await client.send(new UpdateTimeToLiveCommand({ TableName: name, TimeToLiveSpecification: ttl }));
}

async function createBucket(client: S3Client, name: string, p: Record<string, unknown>): Promise<void> {
  await client.send(new CreateBucketCommand({ Bucket: name }));
  const versioning = (p.VersioningConfiguration as { Status?: "Enabled" | "Suspended" } | undefined)?.Status;
  if (versioning)
    await client.send(
      new PutBucketVersioningCommand({ Bucket: name, VersioningConfiguration: { Status: versioning } }),
    );
  const encryption = p.BucketEncryption as { ServerSideEncryptionConfiguration?: unknown[] } | undefined;
  if (encryption?.ServerSideEncryptionConfiguration) {
    // Changes nothing a client sees; moto refuses the SDK's request body, so it is best effort.
    const rules = encryption.ServerSideEncryptionConfiguration as never;
    await client
      .send(new PutBucketEncryptionCommand({ Bucket: name, ServerSideEncryptionConfiguration: { Rules: rules } }))
      .catch(() => undefined);
  }
  const block = p.PublicAccessBlockConfiguration as Record<string, boolean> | undefined;
  if (block)
    await client.send(new PutPublicAccessBlockCommand({ Bucket: name, PublicAccessBlockConfiguration: block }));
}

interface GenerateSecretString {
  PasswordLength?: number;
  ExcludePunctuation?: boolean;
  IncludeSpace?: boolean;
}

/** What GenerateSecretString makes, for the settings the daemon's secrets use (letters and digits). */
function generatedSecret(settings: GenerateSecretString = {}): string {
  const alphabet = `ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789${settings.ExcludePunctuation ? "" : "!#$%&()*+,-.:;<=>?@[]^_{|}~"}`;
  const length = settings.PasswordLength ?? 32;
  const bytes = randomBytes(length);
  return Array.from(bytes, (b) => alphabet[b % alphabet.length]).join("");
}
