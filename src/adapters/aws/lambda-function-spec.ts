/**
 * The pure rules that turn a plugin into a Lambda function definition: its name, Python runtime,
 * memory, timeout, environment, tags and the S3 key of its built code. Kept free of I/O so each
 * rule is unit-tested on its own.
 */

import { createHash } from "node:crypto";
import { pluginCodeBlobKey } from "../../domain/blob-keys.js";
import { memoryBytesOf, runnerOf } from "../../domain/declaration-facts.js";
import { identifierParts, type PluginUniqueIdentifier } from "../../domain/identifier.js";
import type { PluginDeclaration } from "../../domain/manifest.js";

/** Lambda's bounds (CreateFunction API reference). */
export const LAMBDA_MIN_MEMORY_MIB = 128;
export const LAMBDA_MAX_MEMORY_MIB = 10_240;
export const LAMBDA_MAX_TIMEOUT_SECONDS = 900;
export const LAMBDA_MAX_FUNCTION_NAME = 64;
/** Synchronous (and streaming) invoke request payload limit. */
export const LAMBDA_MAX_REQUEST_BYTES = 6_291_456;
/** Function code and layers together, unzipped (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html). */
export const LAMBDA_MAX_UNZIPPED_BYTES = 262_144_000;

/** Where the plugin layer puts its exec wrapper (layers/plugin-runtime/bootstrap). */
export const PLUGIN_BOOTSTRAP_PATH = "/opt/dify-plugin-bootstrap";
/** Never called: the exec wrapper replaces the managed runtime's handler loop. */
export const PLUGIN_HANDLER = "bootstrap.handler";

/** Hex characters of the identifier's SHA-256 in a function name: 96 bits, collisions are not a concern. */
const NAME_HASH_LENGTH = 24;
const NAME_PATTERN = /^[A-Za-z0-9_-]+$/;

export type LambdaPythonRuntime = "python3.12" | "python3.13";
/** Managed Python runtimes the plugin layer is built for, oldest first. */
const SUPPORTED_RUNTIMES: ReadonlyArray<{ minor: number; runtime: LambdaPythonRuntime }> = [
  { minor: 12, runtime: "python3.12" },
  { minor: 13, runtime: "python3.13" },
];

export type LambdaArch = "arm64" | "x86_64";

export const TAG_UNIQUE_IDENTIFIER = "dify:plugin-unique-identifier";
export const TAG_IDENTIFIER_SHA256 = "dify:plugin-unique-identifier-sha256";
export const TAG_PLUGIN_ID = "dify:plugin-id";
const MAX_TAG_VALUE = 256;

export function identifierSha256(uniqueIdentifier: string): string {
  return createHash("sha256").update(uniqueIdentifier).digest("hex");
}

/** Checks the configured prefix once, so a bad PLUGIN_FUNCTION_PREFIX fails clearly. */
export function checkFunctionPrefix(prefix: string): void {
  if (prefix !== "" && !NAME_PATTERN.test(prefix)) {
    throw new Error(`PLUGIN_FUNCTION_PREFIX "${prefix}" may only contain letters, digits, "-" and "_"`);
  }
  const room = LAMBDA_MAX_FUNCTION_NAME - NAME_HASH_LENGTH;
  if (prefix.length > room) {
    throw new Error(`PLUGIN_FUNCTION_PREFIX "${prefix}" is too long: at most ${room} characters`);
  }
}

/**
 * One function per unique identifier, shared by every tenant: the prefix plus a hash of the
 * identifier (identifiers contain `/ : @` and can be hundreds of characters long).
 */
export function pluginFunctionName(prefix: string, uniqueIdentifier: string): string {
  checkFunctionPrefix(prefix);
  return prefix + identifierSha256(uniqueIdentifier).slice(0, NAME_HASH_LENGTH);
}

/**
 * The managed runtime for `meta.runner.version`: the exact one when supported, otherwise the
 * closest newer one (a plugin written for 3.11 runs on 3.12); nothing older than requested.
 */
export function lambdaPythonRuntime(requested: string): LambdaPythonRuntime {
  const match = /^\s*(\d+)(?:\.(\d+))?/.exec(requested);
  const supportedList = SUPPORTED_RUNTIMES.map((r) => r.runtime).join(", ");
  if (!match) throw new Error(`meta.runner.version "${requested}" is not a Python version`);
  const major = Number(match[1]);
  const minor = Number(match[2] ?? 0);
  // Another major version is another language as far as compatibility goes.
  const fit = major === 3 ? SUPPORTED_RUNTIMES.find((r) => r.minor >= minor) : undefined;
  if (!fit) {
    throw new Error(
      `no AWS Lambda Python runtime for meta.runner.version "${requested}": plugins run on ${supportedList}`,
    );
  }
  return fit.runtime;
}

/**
 * The least memory a plugin function gets, whatever its manifest says (official manifests declare
 * 1 MiB). Lambda gives CPU in proportion to memory, a full vCPU at 1,769 MB
 * (https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html); importing the SDK
 * (gevent, pydantic, flask, httpx) takes about 2 s of CPU, so at 128 MB (1/14 of a vCPU) a cold
 * start takes half a minute, and at 1,024 MB about 3.5 s. The runtime raises it with
 * PLUGIN_MIN_MEMORY_MB.
 */
export const DEFAULT_PLUGIN_MIN_MEMORY_MIB = 1024;

/** `resource.memory` (bytes) as Lambda MemorySize: MiB rounded up, at least `floorMiB`, within Lambda's bounds. */
export function memorySizeMiB(bytes: number, floorMiB = DEFAULT_PLUGIN_MIN_MEMORY_MIB): number {
  const floor = Math.max(LAMBDA_MIN_MEMORY_MIB, floorMiB);
  const mib = Math.ceil(bytes / (1024 * 1024));
  if (!Number.isFinite(mib)) return Math.min(LAMBDA_MAX_MEMORY_MIB, floor);
  return Math.min(LAMBDA_MAX_MEMORY_MIB, Math.max(floor, mib));
}

/**
 * Function timeout in seconds. Upstream manifests have no timeout field; a plugin may declare
 * `resource.timeout` (seconds), which is used when it is a positive number. Otherwise the
 * daemon's PLUGIN_MAX_EXECUTION_TIMEOUT. Either way rounded up and kept within 1..900 s, Lambda's
 * limit. A session never outlives its function: the bootstrap stops it before the deadline.
 */
export function functionTimeoutSeconds(declaration: PluginDeclaration, executionTimeoutSeconds: number): number {
  const declared = (declaration.resource as Record<string, unknown>).timeout;
  const seconds =
    typeof declared === "number" && Number.isFinite(declared) && declared > 0 ? declared : executionTimeoutSeconds;
  return Math.min(LAMBDA_MAX_TIMEOUT_SECONDS, Math.max(1, Math.ceil(seconds)));
}

/** Where the plugin builder writes the code zip for one identifier, runtime and architecture. */
export function pluginCodeKey(
  uniqueIdentifier: PluginUniqueIdentifier,
  runtime: LambdaPythonRuntime,
  arch: LambdaArch,
): string {
  return pluginCodeBlobKey(uniqueIdentifier, runtime, arch);
}

/**
 * Tags say which plugin a function runs. Tag values are limited to 256 characters, so the full
 * identifier is only stored when it fits; its SHA-256 always is, and is what ownership checks use.
 */
export function pluginFunctionTags(uniqueIdentifier: PluginUniqueIdentifier): Record<string, string> {
  const id = identifierParts(uniqueIdentifier);
  return {
    [TAG_IDENTIFIER_SHA256]: identifierSha256(uniqueIdentifier),
    ...(uniqueIdentifier.length <= MAX_TAG_VALUE && { [TAG_UNIQUE_IDENTIFIER]: uniqueIdentifier }),
    ...(id.pluginId.length <= MAX_TAG_VALUE && { [TAG_PLUGIN_ID]: id.pluginId }),
  };
}

/** Whether a function's tags say it runs this identifier (false for a hash-prefix collision). */
export function tagsMatch(tags: Record<string, string> | undefined, uniqueIdentifier: string): boolean {
  return tags?.[TAG_IDENTIFIER_SHA256] === identifierSha256(uniqueIdentifier);
}

export interface PluginFunctionSettings {
  functionPrefix: string;
  arch: LambdaArch;
  executionTimeoutSeconds: number;
  /** @default DEFAULT_PLUGIN_MIN_MEMORY_MIB */
  minMemoryMiB?: number;
  /** Subnets and security groups plugin functions run in; no VPC when either list is empty. */
  vpc?: { subnetIds: readonly string[]; securityGroupIds: readonly string[] };
}

/** Everything about a plugin's function that follows from its declaration and the daemon settings. */
export interface PluginFunctionSpec {
  functionName: string;
  runtime: LambdaPythonRuntime;
  arch: LambdaArch;
  memorySizeMiB: number;
  timeoutSeconds: number;
  codeKey: string;
  environment: Record<string, string>;
  tags: Record<string, string>;
  description: string;
  vpc?: { subnetIds: string[]; securityGroupIds: string[] };
}

export function pluginFunctionSpec(
  uniqueIdentifier: PluginUniqueIdentifier,
  declaration: PluginDeclaration,
  settings: PluginFunctionSettings,
): PluginFunctionSpec {
  const runner = runnerOf(declaration);
  const runtime = lambdaPythonRuntime(runner.version);
  return {
    functionName: pluginFunctionName(settings.functionPrefix, uniqueIdentifier),
    runtime,
    arch: settings.arch,
    memorySizeMiB: memorySizeMiB(memoryBytesOf(declaration), settings.minMemoryMiB),
    timeoutSeconds: functionTimeoutSeconds(declaration, settings.executionTimeoutSeconds),
    codeKey: pluginCodeKey(uniqueIdentifier, runtime, settings.arch),
    environment: {
      AWS_LAMBDA_EXEC_WRAPPER: PLUGIN_BOOTSTRAP_PATH,
      INSTALL_METHOD: "local",
      DIFY_PLUGIN_ENTRYPOINT: runner.entrypoint,
    },
    tags: pluginFunctionTags(uniqueIdentifier),
    // Descriptions are limited to 256 characters.
    description: `Dify plugin ${uniqueIdentifier}`.slice(0, 256),
    ...(settings.vpc && settings.vpc.subnetIds.length > 0 && settings.vpc.securityGroupIds.length > 0
      ? { vpc: { subnetIds: [...settings.vpc.subnetIds], securityGroupIds: [...settings.vpc.securityGroupIds] } }
      : {}),
  };
}
