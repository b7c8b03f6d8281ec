/**
 * Deployment settings, read from CDK context (`cdk deploy -c name=value` or `cdk.json` "context").
 * docs/deploy.md lists them; every one has a default so `cdk synth` works on a fresh clone.
 */
import type { Node } from "constructs";
import { LOG_LEVELS } from "../src/config.js";

export type PluginArch = "arm64" | "x86_64";

/** The handlers, exactly the entry files in functions/. */
export const HANDLER_NAMES = [
  "management",
  "dispatch",
  "public-endpoint",
  "backwards-invocation",
  "install-worker",
  "upgrade-check",
] as const;
export type HandlerName = (typeof HANDLER_NAMES)[number];

export interface VpcPlacement {
  readonly subnetIds: readonly string[];
  readonly securityGroupIds: readonly string[];
}

/**
 * The recommended reservations, 126 in all (context `reservedConcurrency=recommended`). Not the
 * default: Lambda leaves at least 100 of the account's concurrency unreserved ("You can reserve up
 * to the Unreserved account concurrency value that is shown, minus 100",
 * https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html), so any reservation
 * fails the deploy on the low quotas new accounts start with, and a reservation also caps its
 * handler. Turn them on once Service Quotas shows 226 or more. A Dify agent turn with one backwards
 * LLM call holds about five executions: dispatch + plugin, backwards-invocation, dispatch + the LLM plugin.
 */
export const DEFAULT_RESERVED_CONCURRENCY: Readonly<Record<HandlerName, number>> = {
  management: 10,
  dispatch: 50,
  "public-endpoint": 10,
  "backwards-invocation": 50,
  "install-worker": 4,
  "upgrade-check": 2,
};

export interface PluginDaemonSettings {
  /** CloudFormation stack name. Context `stackName`. */
  readonly stackName: string;
  /** API Gateway stage; the daemon URL ends with it. Context `stageName`. */
  readonly stageName: string;
  /** Prefix of the per-plugin Lambda functions the daemon creates (≤ 20 chars). Context `pluginFunctionPrefix`. */
  readonly pluginFunctionPrefix: string;
  /** Base URL of Dify's API server as seen from AWS (backwards invocation, endpoint settings). Context `difyInnerApiUrl`. */
  readonly difyInnerApiUrl?: string;
  /** An existing secret holding Dify's INNER_API_KEY_FOR_PLUGIN; a new one is generated when unset. Context `difyInnerApiKeySecretArn`. */
  readonly difyInnerApiKeySecretArn?: string;
  /** Context `marketplaceApiUrl`. */
  readonly marketplaceApiUrl: string;
  /** Reject packages without a valid signature. Context `forceVerifyingSignature`. */
  readonly forceVerifyingSignature: boolean;
  /** Bytes. Context `maxPluginPackageSize`. */
  readonly maxPluginPackageSize: number;
  /** Seconds a plugin invocation may run (dispatch, public endpoints, backwards invocation). Context `pluginMaxExecutionTimeout`. */
  readonly pluginMaxExecutionTimeout: number;
  /** Architecture of the plugin functions and the layer built for them. Context `pluginArch`. */
  readonly pluginArch: PluginArch;
  /** Overrides the URL plugin functions call back (default: the stage URL); `{restApiId}`, `{region}`, `{stage}` are filled in. Context `daemonPublicUrl`. */
  readonly daemonPublicUrl?: string;
  /** Steady-state requests per second across the API. Context `throttlingRateLimit`. */
  readonly throttlingRateLimit: number;
  /** Context `throttlingBurstLimit`. */
  readonly throttlingBurstLimit: number;
  /** Days to keep handler and access logs. Context `logRetentionDays`. */
  readonly logRetentionDays: number;
  /** Handler log level (LOG_LEVEL). Context `logLevel`. */
  readonly logLevel: string;
  /** Run the daemon's auto-upgrade check every 15 minutes (AUTO_UPGRADE_ENABLED and the schedule rule). Context `autoUpgrade`. */
  readonly autoUpgrade: boolean;
  /**
   * Concurrent executions reserved for each of the daemon's own handlers, so plugin functions,
   * which share the account's unreserved pool, cannot starve them. Context `reservedConcurrency`:
   * `off` (the default), `recommended`, or `name=n,...` over the recommended values.
   */
  readonly reservedConcurrency: Readonly<Record<HandlerName, number>> | undefined;
  /** Least memory of a plugin function in MB (CPU comes with memory; manifests often declare 1 MiB). Context `pluginMinMemoryMb`. */
  readonly pluginMinMemoryMb: number;
  /** Subnets and security groups for the handlers that call Dify (management, public-endpoint, backwards-invocation). Context `vpcSubnetIds`, `vpcSecurityGroupIds`. */
  readonly handlerVpc: VpcPlacement | undefined;
  /** Subnets and security groups for plugin functions. Context `pluginVpcSubnetIds`, `pluginVpcSecurityGroupIds`. */
  readonly pluginVpc: VpcPlacement | undefined;
  /** `copy`: the plugin layer is the bootstrap alone (no Python needed; plugins ship the SDK); `script`: layers/build-layer.sh adds the SDK. Context `pluginLayerBuild`. */
  readonly pluginLayerBuild: "script" | "copy";
}

export const DEFAULT_SETTINGS = {
  stackName: "DifyPluginDaemon",
  stageName: "prod",
  marketplaceApiUrl: "https://marketplace.dify.ai",
  forceVerifyingSignature: true,
  // Upstream's default (50 MiB). Uploads through API Gateway are capped lower by its 10 MB payload limit.
  maxPluginPackageSize: 52_428_800,
  pluginMaxExecutionTimeout: 600,
  pluginArch: "arm64",
  throttlingRateLimit: 100,
  throttlingBurstLimit: 200,
  logRetentionDays: 30,
  logLevel: "info",
  autoUpgrade: true,
  pluginLayerBuild: "copy",
  pluginMinMemoryMb: 1024,
} as const;

/** Function names are ≤ 64 chars; the daemon appends an identifier hash, so the prefix must stay short. */
export const MAX_PLUGIN_FUNCTION_PREFIX_LENGTH = 20;

/** `<stack name>-plugin-`, shortened to fit, lower-case: unique per stack so IAM can be scoped to it. */
export function defaultPluginFunctionPrefix(stackName: string): string {
  const suffix = "-plugin-";
  const slug = stackName.toLowerCase().replace(/[^a-z0-9]/g, "");
  return `${slug.slice(0, MAX_PLUGIN_FUNCTION_PREFIX_LENGTH - suffix.length)}${suffix}`;
}

function text(node: Node, key: string): string | undefined {
  const value: unknown = node.tryGetContext(key);
  if (value === undefined || value === null || value === "") return undefined;
  if (typeof value !== "string" && typeof value !== "number" && typeof value !== "boolean") {
    throw new Error(`context ${key} must be a string, number or boolean`);
  }
  return String(value);
}

function integer(node: Node, key: string, fallback: number, min: number, max: number): number {
  const raw = text(node, key);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new Error(`context ${key} must be an integer in [${min}, ${max}], got "${raw}"`);
  return n;
}

function flag(node: Node, key: string, fallback: boolean): boolean {
  const raw = text(node, key);
  if (raw === undefined) return fallback;
  if (raw === "true") return true;
  if (raw === "false") return false;
  throw new Error(`context ${key} must be true or false, got "${raw}"`);
}

function oneOf<T extends string>(node: Node, key: string, fallback: T, allowed: readonly T[]): T {
  const raw = text(node, key);
  if (raw === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(raw))
    throw new Error(`context ${key} must be one of ${allowed.join(", ")}, got "${raw}"`);
  return raw as T;
}

function url(node: Node, key: string): string | undefined {
  const raw = text(node, key);
  if (raw === undefined) return undefined;
  if (!/^https?:\/\/[^\s]+$/.test(raw)) throw new Error(`context ${key} must be an http(s) URL, got "${raw}"`);
  return raw.replace(/\/+$/, "");
}

function reservedConcurrency(node: Node): Record<HandlerName, number> | undefined {
  const raw = text(node, "reservedConcurrency");
  if (raw === undefined || raw === "off") return undefined;
  const result: Record<HandlerName, number> = { ...DEFAULT_RESERVED_CONCURRENCY };
  if (raw === "recommended") return result;
  for (const pair of raw
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean)) {
    const [name, value] = pair.split("=").map((p) => p.trim());
    const n = Number(value);
    if (!(HANDLER_NAMES as readonly string[]).includes(name ?? "") || !Number.isInteger(n) || n < 0) {
      throw new Error(
        `context reservedConcurrency must be "off", "recommended" or name=n pairs for ${HANDLER_NAMES.join(", ")}; got "${pair}"`,
      );
    }
    result[name as HandlerName] = n;
  }
  return result;
}

function ids(node: Node, key: string, prefix: string): string[] {
  const raw = text(node, key);
  const list = (raw ?? "")
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean);
  for (const id of list)
    if (!new RegExp(`^${prefix}-[0-9a-f]{8,17}$`).test(id))
      throw new Error(`context ${key}: "${id}" is not a ${prefix}- id`);
  return list;
}

function vpcPlacement(node: Node, subnetsKey: string, groupsKey: string): VpcPlacement | undefined {
  const subnetIds = ids(node, subnetsKey, "subnet");
  const securityGroupIds = ids(node, groupsKey, "sg");
  if (subnetIds.length === 0 && securityGroupIds.length === 0) return undefined;
  if (subnetIds.length === 0 || securityGroupIds.length === 0)
    throw new Error(`context ${subnetsKey} and ${groupsKey} go together: give both or neither`);
  return { subnetIds, securityGroupIds };
}

/** Reads and validates the settings; throws with the offending context key on bad input. */
export function readSettings(node: Node): PluginDaemonSettings {
  const stackName = text(node, "stackName") ?? DEFAULT_SETTINGS.stackName;
  if (!/^[A-Za-z][A-Za-z0-9-]{0,127}$/.test(stackName))
    throw new Error(`context stackName is not a valid stack name: "${stackName}"`);
  const stageName = text(node, "stageName") ?? DEFAULT_SETTINGS.stageName;
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(stageName))
    throw new Error(`context stageName is not a valid stage name: "${stageName}"`);
  const pluginFunctionPrefix = text(node, "pluginFunctionPrefix") ?? defaultPluginFunctionPrefix(stackName);
  if (
    !/^[A-Za-z0-9_-]+$/.test(pluginFunctionPrefix) ||
    pluginFunctionPrefix.length > MAX_PLUGIN_FUNCTION_PREFIX_LENGTH
  ) {
    throw new Error(
      `context pluginFunctionPrefix must be ≤ ${MAX_PLUGIN_FUNCTION_PREFIX_LENGTH} chars of [A-Za-z0-9_-], got "${pluginFunctionPrefix}"`,
    );
  }
  const difyInnerApiKeySecretArn = text(node, "difyInnerApiKeySecretArn");
  if (difyInnerApiKeySecretArn !== undefined && !difyInnerApiKeySecretArn.startsWith("arn:")) {
    throw new Error(`context difyInnerApiKeySecretArn must be a secret ARN, got "${difyInnerApiKeySecretArn}"`);
  }
  const daemonPublicUrl = text(node, "daemonPublicUrl");
  if (daemonPublicUrl !== undefined && !/^https?:\/\//.test(daemonPublicUrl)) {
    throw new Error(`context daemonPublicUrl must be an http(s) URL template, got "${daemonPublicUrl}"`);
  }
  const throttlingRateLimit = integer(node, "throttlingRateLimit", DEFAULT_SETTINGS.throttlingRateLimit, 1, 10_000);
  return {
    stackName,
    stageName,
    pluginFunctionPrefix,
    difyInnerApiUrl: url(node, "difyInnerApiUrl"),
    difyInnerApiKeySecretArn,
    marketplaceApiUrl: url(node, "marketplaceApiUrl") ?? DEFAULT_SETTINGS.marketplaceApiUrl,
    forceVerifyingSignature: flag(node, "forceVerifyingSignature", DEFAULT_SETTINGS.forceVerifyingSignature),
    maxPluginPackageSize: integer(node, "maxPluginPackageSize", DEFAULT_SETTINGS.maxPluginPackageSize, 1, 2 ** 31),
    // Leaves room under Lambda's 900 s ceiling for the handlers' own shutdown margin (see Handlers).
    pluginMaxExecutionTimeout: integer(
      node,
      "pluginMaxExecutionTimeout",
      DEFAULT_SETTINGS.pluginMaxExecutionTimeout,
      1,
      840,
    ),
    pluginArch: oneOf(node, "pluginArch", DEFAULT_SETTINGS.pluginArch, ["arm64", "x86_64"] as const),
    daemonPublicUrl: daemonPublicUrl?.replace(/\/+$/, ""),
    throttlingRateLimit,
    throttlingBurstLimit: integer(
      node,
      "throttlingBurstLimit",
      Math.max(DEFAULT_SETTINGS.throttlingBurstLimit, throttlingRateLimit),
      1,
      5_000,
    ),
    logRetentionDays: integer(node, "logRetentionDays", DEFAULT_SETTINGS.logRetentionDays, 1, 3653),
    // The daemon's levels (config.ts), silent excepted.
    logLevel: oneOf(
      node,
      "logLevel",
      DEFAULT_SETTINGS.logLevel,
      LOG_LEVELS.filter((level) => level !== "silent"),
    ),
    autoUpgrade: flag(node, "autoUpgrade", DEFAULT_SETTINGS.autoUpgrade),
    pluginLayerBuild: oneOf(node, "pluginLayerBuild", DEFAULT_SETTINGS.pluginLayerBuild, ["script", "copy"] as const),
    pluginMinMemoryMb: integer(node, "pluginMinMemoryMb", DEFAULT_SETTINGS.pluginMinMemoryMb, 128, 10_240),
    reservedConcurrency: reservedConcurrency(node),
    handlerVpc: vpcPlacement(node, "vpcSubnetIds", "vpcSecurityGroupIds"),
    pluginVpc: vpcPlacement(node, "pluginVpcSubnetIds", "pluginVpcSecurityGroupIds"),
  };
}
