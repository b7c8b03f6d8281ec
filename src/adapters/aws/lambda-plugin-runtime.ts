/**
 * The AWS plugin runtime: one Python Lambda function per plugin unique identifier, shared by
 * every tenant. Install builds the code zip (plugin builder Lambda), then creates or updates the
 * function with the plugin layer, whose exec wrapper runs the plugin as a stdio child process
 * and streams each session back as NDJSON. Sessions are InvokeWithResponseStream calls; the
 * plugin's backwards invocations come back to the daemon over HTTP with a per-session token.
 */
import {
  InvokeWithResponseStreamCommand,
  type InvokeWithResponseStreamCommandOutput,
  type LambdaClient,
} from "@aws-sdk/client-lambda";
import type { DaemonConfig } from "../../config.js";
import { packageBlobKey } from "../../domain/blob-keys.js";
import { internalError } from "../../domain/errors.js";
import type { PluginUniqueIdentifier } from "../../domain/identifier.js";
import { runtimeError } from "../../domain/plugin-protocol.js";
import { sessionCallbackToken } from "../../domain/session-token.js";
import { logger } from "../../logger.js";
import type { ItemStore } from "../../ports/item-store.js";
import type {
  InstallablePlugin,
  InvokeOptions,
  PluginRequest,
  PluginRuntime,
  SessionOutput,
} from "../../ports/plugin-runtime.js";
import { createLambdaClient, sharedLambdaClient } from "./clients.js";
import {
  checkFunctionPrefix,
  LAMBDA_MAX_REQUEST_BYTES,
  LAMBDA_MAX_UNZIPPED_BYTES,
  pluginFunctionName,
  pluginFunctionSpec,
} from "./lambda-function-spec.js";
import { buildPluginCode } from "./lambda-plugin-builder.js";
import {
  DEFAULT_WAIT,
  deleteFunction,
  deployFunction,
  isNotFound,
  type WaitSettings,
} from "./lambda-plugin-functions.js";
import { sessionOutputs } from "./lambda-session-stream.js";
import { batchableTexts, mergeBatchAnswers, splitTexts, type TextBatch } from "./text-batches.js";

export interface LambdaPluginRuntimeOptions {
  config: DaemonConfig;
  /** The package bucket: packages are read from it by the builder, code zips written to it. */
  bucket: string;
  items: ItemStore;
  /** For every Lambda call. Defaults: the shared client for management, a no-retry one for sessions (retried here). */
  lambda?: LambdaClient;
  /** The key session callback tokens are signed with: the daemon key (src/daemon-key.ts). */
  callbackSecret: () => string | Promise<string>;
  /** How long and how often to poll while Lambda applies a change. */
  wait?: WaitSettings;
  /** Delay before retry `n` (0-based) of a throttled or failed session start. Default 0.5 s · 2^n. */
  retryDelayMs?: (attempt: number) => number;
}

/** What `isInstalled` reads: one item per identifier. */
export const runtimeRecordKey = (uniqueIdentifier: PluginUniqueIdentifier) => ({
  pk: `RUNTIME#${uniqueIdentifier}`,
  sk: "RUNTIME",
});

/** Retries of a session start that Lambda throttled or failed with a 5xx, before any byte arrived. */
const START_RETRIES = 3;

let sessionClient: LambdaClient | undefined;
/** Sessions retry here (before the first byte only), so their client must not retry as well. */
const sharedSessionClient = (): LambdaClient => (sessionClient ??= createLambdaClient({ maxAttempts: 1 }));

export class LambdaPluginRuntime implements PluginRuntime {
  private readonly config: DaemonConfig;
  private readonly control: () => LambdaClient;
  private readonly sessions: () => LambdaClient;
  private readonly callbackSecret: () => string | Promise<string>;
  private readonly installing = new Map<PluginUniqueIdentifier, Promise<void>>();

  constructor(private readonly options: LambdaPluginRuntimeOptions) {
    this.config = options.config;
    checkFunctionPrefix(this.config.pluginFunctionPrefix);
    const injected = options.lambda;
    this.control = injected ? () => injected : sharedLambdaClient;
    this.sessions = injected ? () => injected : sharedSessionClient;
    this.callbackSecret = options.callbackSecret;
  }

  functionName(uniqueIdentifier: string): string {
    return pluginFunctionName(this.config.pluginFunctionPrefix, uniqueIdentifier);
  }

  async install(plugin: InstallablePlugin, progress: (message: string) => void): Promise<void> {
    const uid = plugin.uniqueIdentifier;
    // Two tenants of this process installing the same plugin share one build and deployment.
    let running = this.installing.get(uid);
    if (running) {
      progress("waiting for another install of this plugin");
    } else {
      running = this.deploy(plugin, progress).finally(() => this.installing.delete(uid));
      this.installing.set(uid, running);
    }
    await running;
  }

  private async deploy(plugin: InstallablePlugin, progress: (message: string) => void): Promise<void> {
    const { config } = this;
    const uid = plugin.uniqueIdentifier;
    const builder = required(config.pluginBuilderFunction, "PLUGIN_BUILDER_FUNCTION");
    const roleArn = required(config.pluginRoleArn, "PLUGIN_ROLE_ARN");
    const layerArn = required(config.pluginLayerArn, "PLUGIN_LAYER_ARN");
    const spec = pluginFunctionSpec(uid, plugin.declaration, {
      functionPrefix: config.pluginFunctionPrefix,
      arch: config.pluginArch,
      executionTimeoutSeconds: config.executionTimeoutSeconds,
      minMemoryMiB: config.pluginMinMemoryMiB,
      vpc: config.pluginVpc,
    });
    const lambda = this.control();
    const codeBudget = LAMBDA_MAX_UNZIPPED_BYTES - config.pluginLayerBytes;

    progress(`building plugin code for ${spec.runtime} (${spec.arch})`);
    const built = await buildPluginCode(lambda, builder, {
      bucket: this.options.bucket,
      package_key: packageBlobKey(uid),
      output_key: spec.codeKey,
      arch: spec.arch,
      python_version: spec.runtime.replace(/^python/, ""),
      max_unzipped_bytes: codeBudget,
      ...(config.pipMirrorUrl ? { index_url: config.pipMirrorUrl } : {}),
    });
    progress(`plugin code built: ${built.sizeBytes} bytes zipped, ${built.unzippedBytes ?? "?"} bytes unzipped`);
    // Lambda would refuse it at CreateFunction with a bare "unzipped size must be smaller than" error.
    if (built.unzippedBytes !== undefined && built.unzippedBytes > codeBudget) {
      throw internalError(
        `plugin code is too large for AWS Lambda: ${mib(built.unzippedBytes)} MiB unzipped, and with the ${mib(config.pluginLayerBytes)} MiB layer ` +
          `a function may hold ${mib(LAMBDA_MAX_UNZIPPED_BYTES)} MiB; plugins with dependencies this large need a container image runtime`,
      );
    }

    const outcome = await deployFunction(
      lambda,
      { uniqueIdentifier: uid, spec, code: { bucket: this.options.bucket, key: built.codeKey }, roleArn, layerArn },
      progress,
      this.options.wait ?? DEFAULT_WAIT,
    );
    await this.options.items.write([
      {
        op: "put",
        item: {
          ...runtimeRecordKey(uid),
          data: {
            function_name: spec.functionName,
            code_key: built.codeKey,
            runtime: spec.runtime,
            arch: spec.arch,
            memory_mib: spec.memorySizeMiB,
            timeout_seconds: spec.timeoutSeconds,
            created_at: new Date().toISOString(),
          },
        },
      },
    ]);
    progress(`plugin function ${spec.functionName} is ready (${outcome})`);
  }

  async isInstalled(uniqueIdentifier: PluginUniqueIdentifier): Promise<boolean> {
    return (await this.options.items.get(runtimeRecordKey(uniqueIdentifier))) !== undefined;
  }

  async remove(uniqueIdentifier: PluginUniqueIdentifier): Promise<void> {
    await deleteFunction(this.control(), this.functionName(uniqueIdentifier));
    await this.options.items.write([{ op: "delete", key: runtimeRecordKey(uniqueIdentifier) }]);
  }

  async *invoke(
    uniqueIdentifier: PluginUniqueIdentifier,
    request: PluginRequest,
    options: InvokeOptions,
  ): AsyncIterable<SessionOutput> {
    const end: SessionOutput = { type: "end" };
    let payload: Uint8Array;
    let token: string | null;
    try {
      token = await this.callbackToken(request.session_id, options.tenantId);
      payload = this.invocationPayload(request, token);
    } catch (err) {
      yield runtimeError(`cannot start the plugin session: ${(err as Error).message}`);
      yield end;
      return;
    }
    if (payload.byteLength > LAMBDA_MAX_REQUEST_BYTES) {
      const texts = batchableTexts(request.data);
      if (texts) {
        yield* this.invokeInBatches(uniqueIdentifier, request, texts, token, options);
        return;
      }
      yield runtimeError(
        `request too large for the plugin runtime: ${payload.byteLength} bytes > ${LAMBDA_MAX_REQUEST_BYTES}`,
      );
      yield end;
      return;
    }
    yield* this.invokeOnce(uniqueIdentifier, request, payload, options);
  }

  /**
   * A text embedding or token count over Lambda's request limit: whole texts in serial sessions,
   * their answers merged into the one answer the caller expects (src/adapters/aws/text-batches.ts).
   */
  private async *invokeInBatches(
    uniqueIdentifier: PluginUniqueIdentifier,
    request: PluginRequest,
    texts: unknown[],
    token: string | null,
    options: InvokeOptions,
  ): AsyncIterable<SessionOutput> {
    const withTexts = (slice: unknown[]): PluginRequest => ({ ...request, data: { ...request.data, texts: slice } });
    let batches: TextBatch[];
    try {
      batches = splitTexts(
        texts,
        LAMBDA_MAX_REQUEST_BYTES,
        (slice) => this.invocationPayload(withTexts(slice), token).byteLength,
      );
    } catch (err) {
      yield runtimeError((err as Error).message);
      yield { type: "end" };
      return;
    }
    logger.info(
      { uniqueIdentifier, action: request.data.action, texts: texts.length, batches: batches.length },
      "request split into serial batches",
    );
    const answers: unknown[] = [];
    for (const [index, batch] of batches.entries()) {
      const payload = this.invocationPayload(withTexts(batch.texts), token);
      const streamed: unknown[] = [];
      for await (const output of this.invokeOnce(uniqueIdentifier, withTexts(batch.texts), payload, options)) {
        if (output.type === "stream") streamed.push(output.data);
        else if (output.type === "error") {
          // A failed batch fails the request, as one plugin session would.
          yield output;
          yield { type: "end" };
          return;
        }
      }
      if (options.signal.aborted) {
        yield { type: "end" };
        return;
      }
      if (streamed.length !== 1) {
        yield runtimeError(
          `ServerlessBatchResultMismatch: batch ${index} answered ${streamed.length} results, expected 1`,
        );
        yield { type: "end" };
        return;
      }
      answers.push(streamed[0]);
    }
    try {
      yield { type: "stream", data: mergeBatchAnswers(String(request.data.action), batches, answers) };
    } catch (err) {
      yield runtimeError((err as Error).message);
    }
    yield { type: "end" };
  }

  private async *invokeOnce(
    uniqueIdentifier: PluginUniqueIdentifier,
    request: PluginRequest,
    payload: Uint8Array,
    options: InvokeOptions,
  ): AsyncIterable<SessionOutput> {
    const end: SessionOutput = { type: "end" };

    const functionName = this.functionName(uniqueIdentifier);
    let response: InvokeWithResponseStreamCommandOutput;
    try {
      response = await this.startSession(functionName, payload, options.signal);
    } catch (err) {
      if (options.signal.aborted) {
        yield end;
        return;
      }
      yield startFailure(err, uniqueIdentifier);
      yield end;
      return;
    }
    yield* sessionOutputs(response.EventStream, {
      sessionId: request.session_id,
      requestId: response.$metadata.requestId,
      signal: options.signal,
    });
  }

  async close(): Promise<void> {
    // Nothing runs in this process; functions stay deployed.
  }

  /** The token the session's backwards invocations present; null when plugins have no callback URL. */
  private async callbackToken(sessionId: string, tenantId: string): Promise<string | null> {
    if (!this.config.daemonPublicUrl) return null;
    return sessionCallbackToken(sessionId, tenantId, await this.callbackSecret());
  }

  /** `{request, callback, timeout_seconds}`: what the bootstrap reads (layers/plugin-runtime). */
  private invocationPayload(request: PluginRequest, token: string | null): Uint8Array {
    const url = this.config.daemonPublicUrl;
    const callback = url && token !== null ? { url, token } : null;
    const event = { request, callback, timeout_seconds: this.config.executionTimeoutSeconds };
    return new TextEncoder().encode(JSON.stringify(event));
  }

  /**
   * Starts the streamed invocation. Throttling and 5xx answers come before any output, so the
   * call is retried then (the plugin has not seen the request); never once output has started.
   */
  private async startSession(
    functionName: string,
    payload: Uint8Array,
    signal: AbortSignal,
  ): Promise<InvokeWithResponseStreamCommandOutput> {
    for (let attempt = 0; ; attempt++) {
      try {
        const command = new InvokeWithResponseStreamCommand({
          FunctionName: functionName,
          InvocationType: "RequestResponse",
          Payload: payload,
        });
        return await this.sessions().send(command, { abortSignal: signal });
      } catch (err) {
        if (signal.aborted || attempt >= START_RETRIES || !isRetryable(err)) throw err;
        const delay = this.options.retryDelayMs?.(attempt) ?? 500 * 2 ** attempt;
        logger.warn(
          { functionName, attempt: attempt + 1, err: (err as Error).name },
          "plugin session start failed, retrying",
        );
        await sleep(delay, signal);
      }
    }
  }
}

const mib = (bytes: number): string => (bytes / (1024 * 1024)).toFixed(1);

function required(value: string | undefined, name: string): string {
  if (!value) throw internalError(`${name} must be set to install plugins on AWS Lambda`);
  return value;
}

function statusOf(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

function isRetryable(err: unknown): boolean {
  const name = (err as { name?: string })?.name ?? "";
  const status = statusOf(err);
  return /Throttl|TooManyRequests/.test(name) || status === 429 || (status !== undefined && status >= 500);
}

function startFailure(err: unknown, uniqueIdentifier: string): SessionOutput {
  const e = err as Error & { $metadata?: { requestId?: string } };
  const args = { request_id: e.$metadata?.requestId ?? null, status_code: statusOf(err) ?? null };
  if (isNotFound(err))
    return runtimeError(`plugin ${uniqueIdentifier} is not installed on this daemon (no Lambda function)`, args);
  return runtimeError(`Plugin runtime request failed: ${e.name}: ${e.message}`, args);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
