/**
 * The part of Lambda's managed Node.js runtime a function sees: its runtime interface client.
 *
 * Polls the Runtime API (AWS_LAMBDA_RUNTIME_API), loads the handler named by _HANDLER
 * ("index.handler" → index.mjs/.js/.cjs in the task root) and answers each invocation:
 * - a buffered handler: its result posted as JSON;
 * - a response-streaming handler (wrapped in `awslambda.streamifyResponse`): the response
 *   stream is the request body of the /response POST, sent chunk by chunk with
 *   `Lambda-Runtime-Function-Response-Mode: streaming`; `awslambda.HttpResponseStream.from`
 *   writes the HTTP prelude (JSON, then 8 NUL bytes) with content type
 *   application/vnd.awslambda.http-integration-response, which API Gateway parses; an error
 *   after the stream started is reported in the Lambda-Runtime-Function-Error-* trailers.
 * Plain JavaScript: it runs the deployed bundles as the managed runtime does, without a loader.
 */
import { existsSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pathToFileURL } from "node:url";

const API = `http://${process.env.AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime`;
const STREAMING = Symbol.for("aws.lambda.runtime.handler.streaming");
const HTTP_INTEGRATION = "application/vnd.awslambda.http-integration-response";

globalThis.awslambda = {
  streamifyResponse(handler) {
    handler[STREAMING] = "response";
    return handler;
  },
  HttpResponseStream: {
    from(stream, prelude) {
      stream.setContentType(HTTP_INTEGRATION);
      stream.write(JSON.stringify(prelude));
      stream.write(new Uint8Array(8));
      return stream;
    },
  },
};

function call(method, path, { headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = request(`${API}${path}`, { method, headers }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

const errorOf = (err) => ({
  errorType: err?.name ?? "Error",
  errorMessage: err?.message ?? String(err),
  trace: typeof err?.stack === "string" ? err.stack.split("\n") : [],
});

async function loadHandler() {
  const root = process.env.LAMBDA_TASK_ROOT ?? process.cwd();
  const [file, name] = (process.env._HANDLER ?? "").split(".");
  const path = [".mjs", ".js", ".cjs"].map((ext) => join(root, `${file}${ext}`)).find((p) => existsSync(p));
  if (!path || !name)
    throw Object.assign(new Error(`Cannot find module '${file}' in ${root}`), { name: "Runtime.ImportModuleError" });
  const handler = (await import(pathToFileURL(path).href))[name];
  if (typeof handler !== "function")
    throw Object.assign(new Error(`${process.env._HANDLER} is undefined or not exported`), {
      name: "Runtime.HandlerNotFound",
    });
  return handler;
}

function context(headers) {
  const deadline = Number(headers["lambda-runtime-deadline-ms"] ?? 0);
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME ?? "",
    functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION ?? "$LATEST",
    invokedFunctionArn: headers["lambda-runtime-invoked-function-arn"] ?? "",
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE ?? "128",
    awsRequestId: headers["lambda-runtime-aws-request-id"],
    logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME ?? "",
    logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME ?? "",
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done() {},
    fail() {},
    succeed() {},
  };
}

/** The response stream of one invocation: the chunked body of its /response request. */
function responseStream(id) {
  const req = request(`${API}/invocation/${id}/response`, {
    method: "POST",
    headers: {
      "Lambda-Runtime-Function-Response-Mode": "streaming",
      "Transfer-Encoding": "chunked",
      "Content-Type": "application/octet-stream",
      Trailer: "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body",
    },
  });
  const answered = new Promise((resolve, reject) => {
    req.on("response", (res) => res.resume().on("end", resolve));
    req.on("error", reject);
  });
  const stream = new Writable({
    write(chunk, encoding, callback) {
      if (req.write(chunk, encoding)) callback();
      else req.once("drain", () => callback());
    },
    final(callback) {
      req.end(callback);
    },
  });
  stream.setContentType = (type) => {
    if (!req.headersSent) req.setHeader("Content-Type", type);
  };
  stream.fail = (err) => {
    const e = errorOf(err);
    req.addTrailers({
      "Lambda-Runtime-Function-Error-Type": e.errorType,
      "Lambda-Runtime-Function-Error-Body": Buffer.from(JSON.stringify(e)).toString("base64"),
    });
    req.end();
  };
  return { stream, answered };
}

async function invokeStreaming(handler, id, event, ctx) {
  const { stream, answered } = responseStream(id);
  try {
    await handler(event, stream, ctx);
    if (!stream.writableEnded) stream.end();
  } catch (err) {
    console.error(JSON.stringify({ level: "ERROR", message: "Invoke Error", ...errorOf(err) }));
    if (!stream.writableEnded) stream.fail(err);
  }
  await answered;
}

async function invokeBuffered(handler, id, event, ctx) {
  try {
    const result = await handler(event, ctx);
    await call("POST", `/invocation/${id}/response`, {
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(result ?? null),
    });
  } catch (err) {
    console.error(JSON.stringify({ level: "ERROR", message: "Invoke Error", ...errorOf(err) }));
    await call("POST", `/invocation/${id}/error`, {
      headers: { "Lambda-Runtime-Function-Error-Type": "Unhandled" },
      body: JSON.stringify(errorOf(err)),
    });
  }
}

let handler;
try {
  handler = await loadHandler();
} catch (err) {
  const e = errorOf(err);
  console.error(JSON.stringify({ level: "ERROR", message: "Init Error", ...e }));
  await call("POST", "/init/error", {
    headers: { "Lambda-Runtime-Function-Error-Type": e.errorType },
    body: JSON.stringify(e),
  });
  process.exit(1);
}
process.on("unhandledRejection", (reason) =>
  console.error(JSON.stringify({ level: "ERROR", message: "Unhandled Promise Rejection", ...errorOf(reason) })),
);

for (;;) {
  let next;
  try {
    next = await call("GET", "/invocation/next");
  } catch {
    // The Runtime API went away: the environment is being shut down.
    process.exit(0);
  }
  const id = next.headers["lambda-runtime-aws-request-id"];
  const event = JSON.parse(next.body.toString("utf8") || "null");
  const ctx = context(next.headers);
  if (handler[STREAMING] === "response") await invokeStreaming(handler, id, event, ctx);
  else await invokeBuffered(handler, id, event, ctx);
}
