/**
 * Creating, updating and deleting a plugin's Lambda function, waiting for each change to take
 * effect. Lambda applies changes asynchronously: a new function is `Pending` until its code and
 * layer are ready, and every update runs `InProgress` before it succeeds or fails, so nothing is
 * reported ready until Lambda says so.
 */
import {
  CreateFunctionCommand,
  DeleteFunctionCommand,
  GetFunctionCommand,
  type GetFunctionCommandOutput,
  type LambdaClient,
  UpdateFunctionCodeCommand,
  UpdateFunctionConfigurationCommand,
  waitForFunctionActiveV2,
  waitForFunctionUpdatedV2,
} from "@aws-sdk/client-lambda";
import { internalError } from "../../domain/errors.js";
import type { PluginUniqueIdentifier } from "../../domain/identifier.js";
import { logger } from "../../logger.js";
import { pluginTracingConfig } from "../../observability/tracing.js";
import { PLUGIN_HANDLER, type PluginFunctionSpec, tagsMatch } from "./lambda-function-spec.js";

export interface FunctionDeployment {
  uniqueIdentifier: PluginUniqueIdentifier;
  spec: PluginFunctionSpec;
  code: { bucket: string; key: string };
  roleArn: string;
  layerArn: string;
}

export interface WaitSettings {
  minDelaySeconds: number;
  maxDelaySeconds: number;
  maxWaitSeconds: number;
}

export const DEFAULT_WAIT: WaitSettings = { minDelaySeconds: 1, maxDelaySeconds: 5, maxWaitSeconds: 600 };

/** How many times an update is retried when another change to the same function is running. */
const CONFLICT_RETRIES = 3;

type Progress = (message: string) => void;

export const isNotFound = (err: unknown): boolean => (err as { name?: string })?.name === "ResourceNotFoundException";
const isConflict = (err: unknown): boolean => (err as { name?: string })?.name === "ResourceConflictException";

export async function describeFunction(
  lambda: LambdaClient,
  functionName: string,
): Promise<GetFunctionCommandOutput | undefined> {
  try {
    return await lambda.send(new GetFunctionCommand({ FunctionName: functionName }));
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** Deleting a function that does not exist is not an error. */
export async function deleteFunction(lambda: LambdaClient, functionName: string): Promise<void> {
  try {
    await lambda.send(new DeleteFunctionCommand({ FunctionName: functionName }));
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}

/** Creates the function, or updates it when it exists; resolves once it is ready to invoke. */
export async function deployFunction(
  lambda: LambdaClient,
  deployment: FunctionDeployment,
  progress: Progress,
  wait: WaitSettings = DEFAULT_WAIT,
): Promise<"created" | "updated"> {
  const { functionName } = deployment.spec;
  const existing = await describeFunction(lambda, functionName);
  if (existing) {
    checkOwner(existing, deployment);
    await updateFunction(lambda, deployment, progress, wait);
    return "updated";
  }
  try {
    await createFunction(lambda, deployment, progress, wait);
    return "created";
  } catch (err) {
    // Another worker created it in the meantime (two tenants installing the same plugin).
    if (!isConflict(err)) throw err;
    const current = await describeFunction(lambda, functionName);
    if (!current) throw err;
    checkOwner(current, deployment);
    await updateFunction(lambda, deployment, progress, wait);
    return "updated";
  }
}

function checkOwner(fn: GetFunctionCommandOutput, deployment: FunctionDeployment): void {
  if (!tagsMatch(fn.Tags, deployment.uniqueIdentifier)) {
    throw internalError(
      `Lambda function ${deployment.spec.functionName} exists but does not belong to plugin ${deployment.uniqueIdentifier}; ` +
        "delete it or change PLUGIN_FUNCTION_PREFIX",
    );
  }
}

function configuration(d: FunctionDeployment, change: "create" | "update") {
  const { spec } = d;
  // An update without VpcConfig would leave a function in the VPC it was moved out of.
  const vpc = spec.vpc ?? (change === "update" ? { subnetIds: [], securityGroupIds: [] } : undefined);
  return {
    ...(vpc && { VpcConfig: { SubnetIds: vpc.subnetIds, SecurityGroupIds: vpc.securityGroupIds } }),
    FunctionName: spec.functionName,
    Description: spec.description,
    Runtime: spec.runtime,
    Handler: PLUGIN_HANDLER,
    Role: d.roleArn,
    Layers: [d.layerArn],
    MemorySize: spec.memorySizeMiB,
    Timeout: spec.timeoutSeconds,
    Environment: { Variables: spec.environment },
    ...pluginTracingConfig(),
  };
}

async function createFunction(
  lambda: LambdaClient,
  d: FunctionDeployment,
  progress: Progress,
  wait: WaitSettings,
): Promise<void> {
  const { spec } = d;
  progress(
    `creating Lambda function ${spec.functionName} (${spec.runtime}, ${spec.arch}, ${spec.memorySizeMiB} MB, ${spec.timeoutSeconds} s timeout)`,
  );
  await lambda.send(
    new CreateFunctionCommand({
      ...configuration(d, "create"),
      Architectures: [spec.arch],
      Code: { S3Bucket: d.code.bucket, S3Key: d.code.key },
      PackageType: "Zip",
      Tags: spec.tags,
    }),
  );
  progress("waiting for the function to become active");
  const result = await waitForFunctionActiveV2(waiterParams(lambda, wait), { FunctionName: spec.functionName });
  if (result.state === "SUCCESS") return;
  const reason =
    failureReason(result.reason, "StateReason") ?? `not active after ${wait.maxWaitSeconds} s (${result.state})`;
  // A function that never became active is useless; leave nothing behind.
  await deleteFunction(lambda, spec.functionName).catch((err: unknown) =>
    logger.warn(
      { functionName: spec.functionName, err: (err as Error).message },
      "could not delete a failed plugin function",
    ),
  );
  throw internalError(`Lambda function ${spec.functionName} failed to become active: ${reason}`);
}

async function updateFunction(
  lambda: LambdaClient,
  d: FunctionDeployment,
  progress: Progress,
  wait: WaitSettings,
): Promise<void> {
  const { spec } = d;
  progress(`updating the code of Lambda function ${spec.functionName}`);
  await whenSettled(lambda, spec.functionName, wait, () =>
    lambda.send(
      new UpdateFunctionCodeCommand({
        FunctionName: spec.functionName,
        S3Bucket: d.code.bucket,
        S3Key: d.code.key,
        Architectures: [spec.arch],
      }),
    ),
  );
  await waitUpdated(lambda, spec.functionName, wait);
  progress(
    `updating the configuration of Lambda function ${spec.functionName} (${spec.runtime}, ${spec.memorySizeMiB} MB, ${spec.timeoutSeconds} s timeout)`,
  );
  await whenSettled(lambda, spec.functionName, wait, () =>
    lambda.send(new UpdateFunctionConfigurationCommand(configuration(d, "update"))),
  );
  await waitUpdated(lambda, spec.functionName, wait);
}

/**
 * Runs a change once the function accepts changes: not while it is still being created and not
 * while another update runs (Lambda answers both with ResourceConflictException).
 */
async function whenSettled(
  lambda: LambdaClient,
  functionName: string,
  wait: WaitSettings,
  change: () => Promise<unknown>,
): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const fn = await describeFunction(lambda, functionName);
    if (!fn) throw internalError(`Lambda function ${functionName} was deleted during the install`);
    if (fn.Configuration?.State === "Pending")
      await waitForFunctionActiveV2(waiterParams(lambda, wait), { FunctionName: functionName });
    if (fn.Configuration?.LastUpdateStatus === "InProgress")
      await waitForFunctionUpdatedV2(waiterParams(lambda, wait), { FunctionName: functionName });
    try {
      await change();
      return;
    } catch (err) {
      if (!isConflict(err) || attempt >= CONFLICT_RETRIES) throw err;
    }
  }
}

async function waitUpdated(lambda: LambdaClient, functionName: string, wait: WaitSettings): Promise<void> {
  const result = await waitForFunctionUpdatedV2(waiterParams(lambda, wait), { FunctionName: functionName });
  if (result.state === "SUCCESS") return;
  const reason =
    failureReason(result.reason, "LastUpdateStatusReason") ??
    `not updated after ${wait.maxWaitSeconds} s (${result.state})`;
  throw internalError(`updating Lambda function ${functionName} failed: ${reason}`);
}

function waiterParams(client: LambdaClient, wait: WaitSettings) {
  return { client, minDelay: wait.minDelaySeconds, maxDelay: wait.maxDelaySeconds, maxWaitTime: wait.maxWaitSeconds };
}

/** The reason Lambda gives in the GetFunction answer the waiter stopped on. */
function failureReason(reason: unknown, field: "StateReason" | "LastUpdateStatusReason"): string | undefined {
  const config = (reason as GetFunctionCommandOutput | undefined)?.Configuration;
  const text = config?.[field];
  const code = field === "StateReason" ? config?.StateReasonCode : config?.LastUpdateStatusReasonCode;
  if (text) return code ? `${code}: ${text}` : text;
  if (reason instanceof Error) return reason.message;
  return undefined;
}
