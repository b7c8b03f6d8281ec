/**
 * The AWS Lambda service's REST API over real HTTP on loopback, for the real LambdaClient
 * (`endpoint`, or AWS_ENDPOINT_URL_LAMBDA). It keeps function definitions in memory and
 * validates them like Lambda does. Who answers an invocation:
 * - a `runner` (function-runner.ts): the function's code in local execution environments, as
 *   Lambda runs it (`npm run start:aws-local`);
 * - or, in tests, `handlers` by function name (Invoke: the return value is the payload, a thrown
 *   error a function error; Event: the call is recorded and the handler runs afterwards) and
 *   `stream` for every InvokeWithResponseStream.
 * Streamed answers are framed as `application/vnd.amazon.eventstream` PayloadChunk /
 * InvokeComplete events, as Lambda frames them.
 *
 * Operations: CreateFunction, GetFunction, GetFunctionConfiguration, UpdateFunctionCode,
 * UpdateFunctionConfiguration, DeleteFunction, Invoke (RequestResponse, Event, DryRun),
 * InvokeWithResponseStream. A change settles after `pendingPolls` GetFunction calls and once the
 * runner has the new code, so waiters see `Pending` / `InProgress` first.
 * Limits enforced: 6 MB synchronous and 1 MB asynchronous request payloads, a 6 MB buffered
 * response, memory 128–10240 MB, timeout 1–900 s.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { EventStreamCodec } from "@smithy/eventstream-codec";
import type { RuntimeOutput } from "./runtime-api.js";

export const REGION = "us-east-1";
export const ACCOUNT = "123456789012";
const NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
const RUNTIMES = new Set([
  "python3.9",
  "python3.10",
  "python3.11",
  "python3.12",
  "python3.13",
  "nodejs20.x",
  "nodejs22.x",
  "provided.al2023",
]);
export const MAX_SYNC_PAYLOAD = 6_291_456;
const MAX_ASYNC_PAYLOAD = 1_048_576;
/** What a buffered (RequestResponse) answer may take; Lambda allows a few bytes over 6 MiB. */
const MAX_SYNC_RESPONSE = 6_291_556;
/** Lambda retries a failed asynchronous invocation twice by default, after about 1 and 2 minutes. */
const DEFAULT_ASYNC_RETRIES = 2;
const ASYNC_RETRY_DELAYS_MS = [60_000, 120_000];

export interface LambdaFunction {
  name: string;
  arn: string;
  configuration: Record<string, unknown> & {
    FunctionName: string;
    Runtime?: string;
    Handler?: string;
    MemorySize: number;
    Timeout: number;
    Architectures: string[];
    Environment?: { Variables?: Record<string, string> };
    Layers?: Array<{ Arn: string }>;
    State: "Pending" | "Active" | "Failed" | "Inactive";
    LastUpdateStatus?: "InProgress" | "Successful" | "Failed";
  };
  /** Where the code is: an object in S3 (CreateFunction), or a directory (a stack's asset). */
  code: { S3Bucket?: string; S3Key?: string; directory?: string };
  tags: Record<string, string>;
  /** Bumped by every change of code or configuration: environments of an older revision are retired. */
  revision: number;
  /** Bumped by every change of code only: its code is fetched again. */
  codeRevision: number;
  /** MaximumRetryAttempts of asynchronous invocations (an EventInvokeConfig). @default 2 */
  asyncRetries?: number;
  /** Reserved concurrency: at most this many environments at once. */
  reservedConcurrency?: number;
  /** GetFunction calls left before the current change settles. */
  pollsLeft: number;
  /** How the current change settles. */
  outcome: ChangeOutcome;
  /** The runner's preparation of the current change (fetching the code), when there is a runner. */
  preparing?: Promise<ChangeOutcome> | undefined;
}

export type ChangeOutcome = { ok: true } | { ok: false; reason: string; code: string };

export type RequestHandler = (event: unknown, fn: LambdaFunction) => unknown | Promise<unknown>;

export type StreamPart =
  | { payload: Uint8Array }
  | { complete: { ErrorCode?: string; ErrorDetails?: string; LogResult?: string } };
export type StreamHandler = (payload: Uint8Array, fn: LambdaFunction, signal: AbortSignal) => AsyncIterable<StreamPart>;

/** An invocation started in an execution environment. */
export interface RunnerInvocation extends AsyncIterable<RuntimeOutput> {
  readonly contentType: string | undefined;
}

/** Runs functions' code (function-runner.ts). */
export interface FunctionRunner {
  /** Gets the function's new code ready (e.g. fetched and unpacked); the change settles with its outcome. */
  prepare(fn: LambdaFunction): Promise<ChangeOutcome>;
  /** Starts an invocation; throws a `Throttled` error when no environment can take it. */
  invoke(fn: LambdaFunction, payload: Uint8Array): Promise<RunnerInvocation>;
  /** The function changed or is gone: environments of older revisions stop. */
  retire(fn: LambdaFunction, deleted: boolean): void;
  /** What the runner can tell about its environments (served at GET /aws-local/environments). */
  describe(): unknown;
}

/** Thrown by a runner that cannot take an invocation now (Lambda answers 429). */
export class Throttled extends Error {
  constructor(
    message: string,
    readonly reason: string,
  ) {
    super(message);
  }
}

export interface LambdaServiceOptions {
  /** Invoke handlers by function name; such functions exist from the start (e.g. the plugin builder). */
  handlers?: Record<string, RequestHandler>;
  /** Answers every InvokeWithResponseStream. */
  stream?: StreamHandler;
  /** The content type `stream` answers declare (e.g. a streamed HTTP integration response). */
  streamContentType?: string;
  /** Runs every function no handler answers. */
  runner?: FunctionRunner;
  /** GetFunction polls that still show a change in progress. @default 0 */
  pendingPolls?: number;
  /** Decides how a create or update settles. @default success */
  settle?: (fn: LambdaFunction, change: "create" | "update") => ChangeOutcome;
  /** Keep every call in `calls` (tests). @default true */
  recordCalls?: boolean;
  /** A fixed port on 127.0.0.1; by default a free one. */
  port?: number;
  /** Told about asynchronous invocations that failed for good. */
  onAsyncFailure?: (fn: LambdaFunction, error: { errorType: string; errorMessage: string }) => void;
}

export interface RecordedCall {
  operation: string;
  functionName?: string;
  body?: unknown;
  invocationType?: string;
}

/** A failure to answer instead of the next call(s) of an operation. */
export interface InjectedFailure {
  status: number;
  type: string;
  message?: string;
}

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

const utf8 = {
  encode: (s: string) => new TextEncoder().encode(s),
  decode: (b: Uint8Array) => new TextDecoder().decode(b),
};
const codec = new EventStreamCodec(utf8.decode, utf8.encode);

export class LambdaService {
  readonly functions = new Map<string, LambdaFunction>();
  readonly calls: RecordedCall[] = [];
  private readonly failures = new Map<string, InjectedFailure[]>();
  private readonly background = new Set<Promise<unknown>>();
  stream: StreamHandler | undefined;

  private constructor(
    private readonly server: Server,
    private readonly options: LambdaServiceOptions,
  ) {
    this.stream = options.stream;
    for (const name of Object.keys(options.handlers ?? {})) {
      const fn = this.newFunction(
        name,
        { FunctionName: name, Runtime: "python3.12", Role: `arn:aws:iam::${ACCOUNT}:role/fake` },
        {},
      );
      fn.configuration.State = "Active";
      fn.configuration.LastUpdateStatus = "Successful";
      this.functions.set(name, fn);
    }
  }

  static async start(options: LambdaServiceOptions = {}): Promise<LambdaService> {
    let service: LambdaService | undefined;
    const server = createServer((req, res) => void service!.handle(req, res));
    service = new LambdaService(server, options);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port ?? 0, "127.0.0.1", resolve);
    });
    return service;
  }

  get endpoint(): string {
    const { port } = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${port}`;
  }

  /**
   * A function as a deployment tool creates it (CloudFormation, from a stack's template): Active
   * at once, its code a local directory.
   */
  register(
    input: Record<string, unknown>,
    settings: { directory: string; asyncRetries?: number; reservedConcurrency?: number },
  ): LambdaFunction {
    const name = String(input.FunctionName ?? "");
    if (!NAME_PATTERN.test(name)) throw new Error(`FunctionName "${name}" does not satisfy [A-Za-z0-9_-]{1,64}`);
    checkLimits(input);
    const fn = this.newFunction(name, input, (input.Tags as Record<string, string> | undefined) ?? {});
    fn.code = { directory: settings.directory };
    fn.asyncRetries = settings.asyncRetries;
    fn.reservedConcurrency = settings.reservedConcurrency;
    fn.configuration.State = "Active";
    fn.configuration.LastUpdateStatus = "Successful";
    delete fn.configuration.StateReason;
    delete fn.configuration.StateReasonCode;
    this.functions.set(name, fn);
    return fn;
  }

  /** Answers the next `times` calls of `operation` with this error. */
  failNext(operation: string, failure: InjectedFailure, times = 1): void {
    const list = this.failures.get(operation) ?? [];
    for (let i = 0; i < times; i++) list.push(failure);
    this.failures.set(operation, list);
  }

  callsOf(operation: string): RecordedCall[] {
    return this.calls.filter((c) => c.operation === operation);
  }

  /** Waits for asynchronously invoked functions to finish. */
  async idle(): Promise<void> {
    while (this.background.size > 0) await Promise.allSettled([...this.background]);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Runs an asynchronous invocation as Lambda's event queue does (EventBridge and other services use this). */
  invokeAsync(name: string, event: unknown): void {
    const fn = this.existing(name);
    this.queueEvent(fn, utf8.encode(JSON.stringify(event)));
  }

  // -------------------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = randomUUID();
    try {
      const body = await readBody(req);
      await this.route(req, res, body, requestId);
    } catch (err) {
      const e = err instanceof ApiError ? err : new ApiError(500, "ServiceException", (err as Error).message);
      if (res.headersSent) {
        res.destroy();
        return;
      }
      res.writeHead(e.status, {
        "content-type": "application/json",
        "x-amzn-errortype": e.type,
        "x-amzn-requestid": requestId,
      });
      res.end(JSON.stringify({ Type: e.status >= 500 ? "Service" : "User", message: e.message, ...e.extra }));
    }
  }

  private async route(req: IncomingMessage, res: ServerResponse, body: Uint8Array, requestId: string): Promise<void> {
    const url = new URL(req.url ?? "/", "http://lambda.local");
    const method = req.method ?? "GET";
    const path = url.pathname;
    const json = (status: number, value: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { "content-type": "application/json", "x-amzn-requestid": requestId, ...headers });
      res.end(value === undefined ? "" : JSON.stringify(value));
    };

    if (method === "GET" && path === "/aws-local/environments") return json(200, this.options.runner?.describe() ?? []);
    if (method === "POST" && path === "/2015-03-31/functions") {
      const input = parseJson(body) as Record<string, unknown>;
      this.record("CreateFunction", String(input.FunctionName ?? ""), input);
      return json(201, this.createFunction(input).configuration);
    }
    const fnMatch = /^\/(2015-03-31|2021-11-15)\/functions\/([^/]+)(?:\/([a-z-]+))?$/.exec(path);
    if (!fnMatch) throw new ApiError(404, "UnknownOperationException", `no route ${method} ${path}`);
    const [, version, rawName, sub] = fnMatch as unknown as [string, string, string, string | undefined];
    const name = functionNameOf(decodeURIComponent(rawName));

    if (version === "2021-11-15" && method === "POST" && sub === "response-streaming-invocations") {
      this.record("InvokeWithResponseStream", name, parseJson(body));
      return this.invokeStreaming(this.existing(name), body, res, requestId);
    }
    if (method === "GET" && sub === undefined) {
      this.record("GetFunction", name);
      const fn = this.poll(this.existing(name));
      return json(200, {
        Configuration: fn.configuration,
        Code: {
          RepositoryType: "S3",
          Location: `https://awslambda-${REGION}-tasks.s3.amazonaws.com/snapshots/${ACCOUNT}/${fn.name}`,
        },
        Tags: fn.tags,
      });
    }
    if (method === "GET" && sub === "configuration") {
      this.record("GetFunctionConfiguration", name);
      return json(200, this.poll(this.existing(name)).configuration);
    }
    if (method === "PUT" && sub === "code") {
      const input = parseJson(body) as Record<string, unknown>;
      this.record("UpdateFunctionCode", name, input);
      return json(200, this.update(name, "UpdateFunctionCode", input).configuration);
    }
    if (method === "PUT" && sub === "configuration") {
      const input = parseJson(body) as Record<string, unknown>;
      this.record("UpdateFunctionConfiguration", name, input);
      return json(200, this.update(name, "UpdateFunctionConfiguration", input).configuration);
    }
    if (method === "DELETE" && sub === undefined) {
      this.record("DeleteFunction", name);
      const fn = this.existing(name);
      this.functions.delete(name);
      this.options.runner?.retire(fn, true);
      res.writeHead(204, { "x-amzn-requestid": requestId });
      res.end();
      return;
    }
    if (method === "POST" && sub === "invocations") {
      const type = String(req.headers["x-amz-invocation-type"] ?? "RequestResponse");
      if (this.options.recordCalls !== false)
        this.calls.push({ operation: "Invoke", functionName: name, body: parseJson(body), invocationType: type });
      this.injected("Invoke");
      return this.invoke(this.existing(name), type, body, res, requestId);
    }
    throw new ApiError(404, "UnknownOperationException", `no route ${method} ${path}`);
  }

  private record(operation: string, functionName: string, body?: unknown): void {
    if (this.options.recordCalls !== false) this.calls.push({ operation, functionName, body });
    this.injected(operation);
  }

  private injected(operation: string): void {
    const failure = this.failures.get(operation)?.shift();
    if (failure) throw new ApiError(failure.status, failure.type, failure.message ?? `${failure.type} (injected)`);
  }

  private existing(name: string): LambdaFunction {
    const fn = this.functions.get(name);
    if (!fn) throw new ApiError(404, "ResourceNotFoundException", `Function not found: ${arnOf(name)}`);
    return fn;
  }

  private newFunction(name: string, input: Record<string, unknown>, tags: Record<string, string>): LambdaFunction {
    const env = input.Environment as { Variables?: Record<string, string> } | undefined;
    return {
      name,
      arn: arnOf(name),
      configuration: {
        FunctionName: name,
        FunctionArn: arnOf(name),
        Runtime: input.Runtime as string | undefined,
        Role: input.Role,
        Handler: input.Handler as string | undefined,
        Description: input.Description ?? "",
        MemorySize: (input.MemorySize as number | undefined) ?? 128,
        Timeout: (input.Timeout as number | undefined) ?? 3,
        Architectures: (input.Architectures as string[] | undefined) ?? ["x86_64"],
        Environment: { Variables: env?.Variables ?? {} },
        Layers: ((input.Layers as string[] | undefined) ?? []).map((Arn) => ({ Arn, CodeSize: 0 })),
        ...(input.VpcConfig !== undefined && { VpcConfig: input.VpcConfig }),
        PackageType: "Zip",
        Version: "$LATEST",
        CodeSize: 1024,
        CodeSha256: "local",
        LastModified: new Date().toISOString().replace("Z", "+0000"),
        State: "Pending",
        StateReason: "The function is being created.",
        StateReasonCode: "Creating",
      },
      code: { S3Bucket: undefined, S3Key: undefined },
      tags,
      revision: 1,
      codeRevision: 1,
      pollsLeft: this.options.pendingPolls ?? 0,
      outcome: { ok: true },
    };
  }

  private createFunction(input: Record<string, unknown>): LambdaFunction {
    const name = String(input.FunctionName ?? "");
    if (!NAME_PATTERN.test(name)) throw invalid(`FunctionName "${name}" does not satisfy [A-Za-z0-9_-]{1,64}`);
    if (this.functions.has(name))
      throw new ApiError(409, "ResourceConflictException", `Function already exist: ${name}`);
    if (typeof input.Role !== "string" || !input.Role) throw invalid("Role is required");
    if (typeof input.Runtime !== "string" || !RUNTIMES.has(input.Runtime))
      throw invalid(`Runtime "${String(input.Runtime)}" is not supported`);
    const code = input.Code as { S3Bucket?: string; S3Key?: string } | undefined;
    if (!code?.S3Bucket || !code.S3Key) throw invalid("Code.S3Bucket and Code.S3Key are required");
    checkLimits(input);
    const fn = this.newFunction(name, input, (input.Tags as Record<string, string> | undefined) ?? {});
    fn.code = { S3Bucket: code.S3Bucket, S3Key: code.S3Key };
    fn.outcome = this.options.settle?.(fn, "create") ?? { ok: true };
    fn.preparing = this.options.runner?.prepare(fn);
    this.functions.set(name, fn);
    return fn;
  }

  private update(name: string, operation: string, input: Record<string, unknown>): LambdaFunction {
    const fn = this.existing(name);
    if (fn.configuration.State === "Pending" || fn.configuration.LastUpdateStatus === "InProgress") {
      throw new ApiError(
        409,
        "ResourceConflictException",
        `The operation cannot be performed at this time. An update is in progress for resource: ${fn.arn}`,
      );
    }
    if (operation === "UpdateFunctionCode") {
      if (!input.S3Bucket || !input.S3Key) throw invalid("S3Bucket and S3Key are required");
      fn.code = { S3Bucket: input.S3Bucket as string, S3Key: input.S3Key as string };
      fn.codeRevision += 1;
      if (input.Architectures) fn.configuration.Architectures = input.Architectures as string[];
    } else {
      checkLimits(input);
      if (input.Runtime !== undefined && !RUNTIMES.has(String(input.Runtime)))
        throw invalid(`Runtime "${String(input.Runtime)}" is not supported`);
      const c = fn.configuration;
      for (const field of ["Runtime", "Role", "Handler", "Description", "MemorySize", "Timeout"] as const) {
        if (input[field] !== undefined) (c as Record<string, unknown>)[field] = input[field];
      }
      if (input.Environment !== undefined)
        c.Environment = { Variables: (input.Environment as { Variables?: Record<string, string> }).Variables ?? {} };
      if (input.Layers !== undefined) c.Layers = (input.Layers as string[]).map((Arn) => ({ Arn, CodeSize: 0 }));
      if (input.VpcConfig !== undefined) c.VpcConfig = input.VpcConfig;
    }
    fn.revision += 1;
    fn.configuration.LastUpdateStatus = "InProgress";
    fn.configuration.LastModified = new Date().toISOString().replace("Z", "+0000");
    fn.pollsLeft = this.options.pendingPolls ?? 0;
    fn.outcome = this.options.settle?.(fn, "update") ?? { ok: true };
    if (this.options.runner) {
      this.options.runner.retire(fn, false);
      fn.preparing = this.options.runner.prepare(fn);
    }
    return fn;
  }

  /** Advances a change in progress by one observation, settling it when no polls are left and the code is ready. */
  private poll(fn: LambdaFunction): LambdaFunction {
    const c = fn.configuration;
    const changing = c.State === "Pending" || c.LastUpdateStatus === "InProgress";
    if (!changing) return fn;
    if (fn.pollsLeft > 0) {
      fn.pollsLeft -= 1;
      return fn;
    }
    if (fn.preparing) {
      const preparing = fn.preparing;
      // Settled on a later poll, once the runner is done (a promise cannot be read synchronously).
      void preparing.then((outcome) => {
        if (fn.preparing !== preparing) return;
        fn.preparing = undefined;
        if (fn.outcome.ok) fn.outcome = outcome;
      });
      return fn;
    }
    const creating = c.State === "Pending";
    if (fn.outcome.ok) {
      c.State = "Active";
      c.LastUpdateStatus = "Successful";
      delete c.StateReason;
      delete c.StateReasonCode;
      delete c.LastUpdateStatusReason;
    } else if (creating) {
      c.State = "Failed";
      c.StateReason = fn.outcome.reason;
      c.StateReasonCode = fn.outcome.code;
    } else {
      c.LastUpdateStatus = "Failed";
      c.LastUpdateStatusReason = fn.outcome.reason;
      c.LastUpdateStatusReasonCode = fn.outcome.code;
    }
    return fn;
  }

  private async invoke(
    fn: LambdaFunction,
    type: string,
    body: Uint8Array,
    res: ServerResponse,
    requestId: string,
  ): Promise<void> {
    const handler = this.options.handlers?.[fn.name];
    if (fn.configuration.State !== "Active")
      throw new ApiError(409, "ResourceConflictException", `The function is ${fn.configuration.State}`);
    if (type === "DryRun") {
      res.writeHead(204, { "x-amzn-requestid": requestId });
      res.end();
      return;
    }
    if (type === "Event") {
      if (body.byteLength > MAX_ASYNC_PAYLOAD)
        throw new ApiError(
          413,
          "RequestTooLargeException",
          `Request must be smaller than ${MAX_ASYNC_PAYLOAD} bytes for the InvokeAsync operation`,
        );
      if (handler) {
        this.track(
          Promise.resolve()
            .then(() => handler(parseJson(body), fn))
            .catch(() => undefined),
        );
      } else {
        this.queueEvent(fn, body);
      }
      res.writeHead(202, { "x-amzn-requestid": requestId });
      res.end();
      return;
    }
    if (body.byteLength > MAX_SYNC_PAYLOAD)
      throw new ApiError(
        413,
        "RequestTooLargeException",
        `Request must be smaller than ${MAX_SYNC_PAYLOAD} bytes for the Invoke operation`,
      );
    let payload: unknown;
    let functionError = false;
    if (handler) {
      try {
        payload = await handler(parseJson(body), fn);
      } catch (err) {
        functionError = true;
        payload = { errorMessage: (err as Error).message, errorType: (err as Error).name || "Error", stackTrace: [] };
      }
      payload = JSON.stringify(payload ?? null);
    } else {
      const answer = await this.runBuffered(fn, body);
      functionError = answer.error !== undefined;
      payload = answer.error ? JSON.stringify(answer.error) : Buffer.from(answer.bytes);
    }
    res.writeHead(200, {
      "content-type": "application/json",
      "x-amzn-requestid": requestId,
      "x-amz-executed-version": "$LATEST",
      ...(functionError && { "x-amz-function-error": "Unhandled" }),
    });
    res.end(payload as string | Buffer);
  }

  /** A whole answer from the runner, within Lambda's buffered response limit. */
  private async runBuffered(
    fn: LambdaFunction,
    body: Uint8Array,
  ): Promise<{ bytes: Uint8Array; error?: { errorType: string; errorMessage: string } }> {
    const invocation = await this.start(fn, body);
    const parts: Uint8Array[] = [];
    let size = 0;
    for await (const item of invocation) {
      if (item.kind === "error")
        return { bytes: new Uint8Array(), error: { errorType: item.errorType, errorMessage: item.errorMessage } };
      size += item.bytes.byteLength;
      if (size > MAX_SYNC_RESPONSE) {
        const errorMessage = `Response payload size exceeded maximum allowed payload size (${MAX_SYNC_RESPONSE} bytes).`;
        return { bytes: new Uint8Array(), error: { errorType: "Function.ResponseSizeTooLarge", errorMessage } };
      }
      parts.push(item.bytes);
    }
    return { bytes: Buffer.concat(parts) };
  }

  private async start(fn: LambdaFunction, body: Uint8Array): Promise<RunnerInvocation> {
    const runner = this.options.runner;
    if (!runner) throw new ApiError(500, "ServiceException", `no handler for ${fn.name}`);
    try {
      return await runner.invoke(fn, body);
    } catch (err) {
      if (err instanceof Throttled)
        throw new ApiError(429, "TooManyRequestsException", err.message, { Reason: err.reason });
      throw err;
    }
  }

  /** Lambda's event queue: the invocation runs later, retried on a function error as configured. */
  private queueEvent(fn: LambdaFunction, body: Uint8Array): void {
    const retries = fn.asyncRetries ?? DEFAULT_ASYNC_RETRIES;
    const run = async () => {
      for (let attempt = 0; ; attempt++) {
        let error: { errorType: string; errorMessage: string } | undefined;
        try {
          error = (await this.runBuffered(fn, body)).error;
        } catch (err) {
          error = { errorType: (err as ApiError).type ?? "ServiceException", errorMessage: (err as Error).message };
        }
        if (!error) return;
        if (attempt >= retries) {
          this.options.onAsyncFailure?.(fn, error);
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, ASYNC_RETRY_DELAYS_MS[attempt] ?? 120_000));
      }
    };
    this.track(run());
  }

  private track(work: Promise<unknown>): void {
    const tracked: Promise<unknown> = work.catch(() => undefined).finally(() => this.background.delete(tracked));
    this.background.add(tracked);
  }

  private async invokeStreaming(
    fn: LambdaFunction,
    body: Uint8Array,
    res: ServerResponse,
    requestId: string,
  ): Promise<void> {
    if (body.byteLength > MAX_SYNC_PAYLOAD)
      throw new ApiError(
        413,
        "RequestTooLargeException",
        `Request must be smaller than ${MAX_SYNC_PAYLOAD} bytes for the InvokeWithResponseStream operation`,
      );
    if (fn.configuration.State !== "Active")
      throw new ApiError(409, "ResourceConflictException", `The function is ${fn.configuration.State}`);
    const abort = new AbortController();
    res.once("close", () => abort.abort());
    let parts: AsyncIterable<StreamPart>;
    let contentType: string | undefined;
    if (this.stream) {
      parts = this.stream(body, fn, abort.signal);
      contentType = this.options.streamContentType;
    } else {
      const invocation = await this.start(fn, body);
      parts = streamFromRuntime(invocation);
      // The function's own content type is known once its response starts (the first chunk).
      const iterator = parts[Symbol.asyncIterator]();
      const first = await iterator.next();
      contentType = invocation.contentType;
      parts = prepend(first, iterator);
    }
    res.writeHead(200, {
      // The SDK reads this header as ResponseStreamContentType; the body is an event stream either way.
      "content-type": contentType ?? "application/vnd.amazon.eventstream",
      "x-amzn-requestid": requestId,
      "x-amz-executed-version": "$LATEST",
    });
    let completed = false;
    try {
      for await (const part of parts) {
        if (abort.signal.aborted) break;
        if ("payload" in part) {
          if (!res.write(eventMessage("PayloadChunk", "application/octet-stream", part.payload)))
            await new Promise((resolve) => res.once("drain", resolve));
        } else {
          res.write(eventMessage("InvokeComplete", "application/json", utf8.encode(JSON.stringify(part.complete))));
          completed = true;
          break;
        }
      }
      if (!completed && !abort.signal.aborted)
        res.write(eventMessage("InvokeComplete", "application/json", utf8.encode("{}")));
    } catch (err) {
      if (!abort.signal.aborted) {
        const details = JSON.stringify({ errorMessage: (err as Error).message, errorType: "Unhandled" });
        res.write(
          eventMessage(
            "InvokeComplete",
            "application/json",
            utf8.encode(JSON.stringify({ ErrorCode: "Unhandled", ErrorDetails: details })),
          ),
        );
      }
    }
    res.end();
  }
}

function prepend<T>(first: IteratorResult<T>, rest: AsyncIterator<T>): AsyncIterable<T> {
  return {
    async *[Symbol.asyncIterator]() {
      if (first.done) return;
      yield first.value;
      for (let next = await rest.next(); !next.done; next = await rest.next()) yield next.value;
    },
  };
}

/** Adapts a Runtime API invocation (a real runtime's response) to stream parts, as Lambda relays it. */
export async function* streamFromRuntime(output: AsyncIterable<RuntimeOutput>): AsyncIterable<StreamPart> {
  for await (const item of output) {
    if (item.kind === "chunk") yield { payload: item.bytes };
    else {
      yield { complete: { ErrorCode: item.errorType, ErrorDetails: item.errorMessage } };
      return;
    }
  }
  yield { complete: {} };
}

function eventMessage(eventType: string, contentType: string, body: Uint8Array): Uint8Array {
  return codec.encode({
    headers: {
      ":event-type": { type: "string", value: eventType },
      ":content-type": { type: "string", value: contentType },
      ":message-type": { type: "string", value: "event" },
    },
    body,
  });
}

function checkLimits(input: Record<string, unknown>): void {
  const memory = input.MemorySize as number | undefined;
  if (memory !== undefined && (!Number.isInteger(memory) || memory < 128 || memory > 10_240)) {
    throw invalid(`MemorySize ${memory} must be between 128 and 10240`);
  }
  const timeout = input.Timeout as number | undefined;
  if (timeout !== undefined && (!Number.isInteger(timeout) || timeout < 1 || timeout > 900)) {
    throw invalid(`Timeout ${timeout} must be between 1 and 900`);
  }
}

function invalid(message: string): ApiError {
  return new ApiError(400, "InvalidParameterValueException", message);
}

export function arnOf(name: string): string {
  return `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${name}`;
}

/** Accepts a name or an ARN, as Lambda does. */
function functionNameOf(nameOrArn: string): string {
  const m = /^arn:[^:]+:lambda:[^:]+:\d+:function:([^:]+)/.exec(nameOrArn);
  return m ? m[1]! : nameOrArn;
}

async function readBody(req: IncomingMessage): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk);
  return new Uint8Array(Buffer.concat(chunks));
}

function parseJson(body: Uint8Array): unknown {
  if (body.byteLength === 0) return undefined;
  try {
    return JSON.parse(utf8.decode(body));
  } catch {
    return utf8.decode(body);
  }
}
