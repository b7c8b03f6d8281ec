/**
 * The Lambda Runtime API (2018-06-01) of one execution environment, on loopback: what a runtime
 * process (the managed runtime's client, or the plugin layer's bootstrap) polls for invocations
 * and answers to. execution-environment.ts pairs it with that process.
 *
 * Implemented: GET  /2018-06-01/runtime/invocation/next (blocks until there is an invocation),
 *              POST /2018-06-01/runtime/invocation/{id}/response (buffered, or chunked with
 *                   `Lambda-Runtime-Function-Response-Mode: streaming`; error trailers honoured),
 *              POST /2018-06-01/runtime/invocation/{id}/error,
 *              POST /2018-06-01/runtime/init/error.
 * One invocation runs at a time, as in Lambda; response chunks are passed on as they arrive.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { AsyncQueue } from "../shared/async-queue.js";

export type RuntimeOutput =
  | { kind: "chunk"; bytes: Uint8Array }
  | { kind: "error"; errorType: string; errorMessage: string };

/** An invocation's output, with what the runtime said about it once its response started. */
export interface RuntimeInvocation extends AsyncIterable<RuntimeOutput> {
  /** The request id the runtime sees (Lambda-Runtime-Aws-Request-Id). */
  readonly id: string;
  /** The response's Content-Type as the runtime sent it (a streamed HTTP integration response names its own). */
  readonly contentType: string | undefined;
}

export interface InvokeSettings {
  /** Lambda-Runtime-Deadline-Ms is now + this. */
  timeoutMs: number;
  functionArn: string;
}

interface Invocation {
  id: string;
  payload: Uint8Array;
  deadlineMs: number;
  functionArn: string;
  output: AsyncQueue<RuntimeOutput> & { id: string; contentType: string | undefined };
}

const PREFIX = "/2018-06-01/runtime";

export class LambdaRuntimeApi {
  private readonly queued: Invocation[] = [];
  private readonly active = new Map<string, Invocation>();
  private nextWaiter: ((inv: Invocation) => void) | undefined;
  /** Set once the runtime reported an initialisation error. */
  initError: { errorType: string; errorMessage: string } | undefined;
  /** When the runtime first asked for an invocation (Date.now()): the end of its init phase, in Lambda's terms. */
  firstNextAt: number | undefined;

  private constructor(private readonly server: Server) {}

  static async start(): Promise<LambdaRuntimeApi> {
    let api: LambdaRuntimeApi | undefined;
    const server = createServer((req, res) => {
      api!.route(req, res).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500);
        res.end(String(err));
      });
    });
    api = new LambdaRuntimeApi(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return api;
  }

  /** `host:port`, as AWS_LAMBDA_RUNTIME_API carries it. */
  get address(): string {
    const { port } = this.server.address() as AddressInfo;
    return `127.0.0.1:${port}`;
  }

  /** Queues an invocation; its output ends after the response body, or with one error. */
  invoke(payload: Uint8Array, settings: InvokeSettings): RuntimeInvocation {
    const id = randomUUID();
    const inv: Invocation = {
      id,
      payload,
      deadlineMs: Date.now() + settings.timeoutMs,
      functionArn: settings.functionArn,
      output: Object.assign(new AsyncQueue<RuntimeOutput>(), { id, contentType: undefined as string | undefined }),
    };
    if (this.initError) {
      this.finish(inv, { kind: "error", ...this.initError });
    } else if (this.nextWaiter) {
      const deliver = this.nextWaiter;
      this.nextWaiter = undefined;
      deliver(inv);
    } else {
      this.queued.push(inv);
    }
    return inv.output;
  }

  /** True while an invocation is queued or running: the environment cannot take another. */
  get busy(): boolean {
    return this.queued.length > 0 || this.active.size > 0;
  }

  /** Fails every queued and running invocation (the environment's process died). */
  failAll(errorType: string, errorMessage: string): void {
    for (const inv of [...this.queued, ...this.active.values()])
      this.finish(inv, { kind: "error", errorType, errorMessage });
    this.queued.length = 0;
    this.active.clear();
  }

  async close(): Promise<void> {
    this.failAll("Sandbox.Stopped", "the execution environment was shut down");
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private finish(inv: Invocation, last?: RuntimeOutput): void {
    if (last) inv.output.push(last);
    inv.output.close();
    this.active.delete(inv.id);
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "").split("?")[0] ?? "";
    if (req.method === "GET" && path === `${PREFIX}/invocation/next`) return this.next(req, res);
    if (req.method === "POST" && path === `${PREFIX}/init/error`) {
      const error = parseError(await readBody(req), req);
      this.initError = error;
      this.failAll(error.errorType, error.errorMessage);
      return accepted(res);
    }
    const match = /^\/2018-06-01\/runtime\/invocation\/([^/]+)\/(response|error)$/.exec(path);
    if (req.method === "POST" && match) {
      const inv = this.active.get(decodeURIComponent(match[1]!));
      if (!inv) {
        await readBody(req);
        res.writeHead(400, { "content-type": "application/json" });
        res.end(JSON.stringify({ errorMessage: "unknown or finished invocation", errorType: "InvalidRequestID" }));
        return;
      }
      if (match[2] === "error") {
        this.finish(inv, { kind: "error", ...parseError(await readBody(req), req) });
        return accepted(res);
      }
      return this.response(inv, req, res);
    }
    res.writeHead(404, { "content-type": "application/json" });
    res.end(JSON.stringify({ errorMessage: `no route ${req.method} ${path}`, errorType: "NotFound" }));
  }

  private async next(_req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.firstNextAt ??= Date.now();
    const inv =
      this.queued.shift() ??
      (await new Promise<Invocation | undefined>((resolve) => {
        this.nextWaiter = resolve;
        // The runtime went away while waiting (process killed).
        res.once("close", () => {
          if (this.nextWaiter === resolve) this.nextWaiter = undefined;
          resolve(undefined);
        });
      }));
    if (!inv) return;
    if (res.destroyed) {
      this.queued.unshift(inv);
      return;
    }
    this.active.set(inv.id, inv);
    res.writeHead(200, {
      "content-type": "application/json",
      "lambda-runtime-aws-request-id": inv.id,
      "lambda-runtime-deadline-ms": String(inv.deadlineMs),
      "lambda-runtime-invoked-function-arn": inv.functionArn,
      "lambda-runtime-trace-id": `Root=1-${Math.floor(Date.now() / 1000).toString(16)}-${randomUUID().replace(/-/g, "").slice(0, 24)};Sampled=0`,
    });
    res.end(Buffer.from(inv.payload));
  }

  private async response(inv: Invocation, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const streaming = String(req.headers["lambda-runtime-function-response-mode"] ?? "").toLowerCase() === "streaming";
    const contentType = req.headers["content-type"];
    if (contentType) inv.output.contentType = contentType;
    if (!streaming) {
      inv.output.push({ kind: "chunk", bytes: await readBody(req) });
      this.finish(inv);
      return accepted(res);
    }
    // Passed on chunk by chunk, as Lambda forwards a streamed response.
    for await (const chunk of req as AsyncIterable<Buffer>)
      inv.output.push({ kind: "chunk", bytes: new Uint8Array(chunk) });
    const errorType = req.trailers["lambda-runtime-function-error-type"];
    if (errorType) {
      const body = req.trailers["lambda-runtime-function-error-body"];
      const message = body ? Buffer.from(body, "base64").toString("utf8") : "";
      this.finish(inv, { kind: "error", errorType, errorMessage: message });
    } else {
      this.finish(inv);
    }
    accepted(res);
  }
}

function accepted(res: ServerResponse): void {
  res.writeHead(202, { "content-type": "application/json" });
  res.end(JSON.stringify({ status: "OK" }));
}

async function readBody(req: IncomingMessage): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk);
  return new Uint8Array(Buffer.concat(chunks));
}

function parseError(body: Uint8Array, req: IncomingMessage): { errorType: string; errorMessage: string } {
  const header = req.headers["lambda-runtime-function-error-type"];
  let json: { errorType?: unknown; errorMessage?: unknown } = {};
  try {
    json = JSON.parse(Buffer.from(body).toString("utf8")) as typeof json;
  } catch {
    // Lambda accepts any body; the header still names the error.
  }
  return {
    errorType: typeof json.errorType === "string" ? json.errorType : typeof header === "string" ? header : "Unhandled",
    errorMessage: typeof json.errorMessage === "string" ? json.errorMessage : "",
  };
}
