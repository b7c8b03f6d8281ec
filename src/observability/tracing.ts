/**
 * X-Ray tracing, a deployment option (CDK context `tracing`, which sets DAEMON_TRACING=true and
 * turns on active tracing for the API stage, the handlers and the plugin functions). When on,
 * Powertools Tracer is loaded before the first invocation and every AWS SDK client the daemon
 * builds is captured, so a dispatch shows as API Gateway → dispatch handler → Lambda Invoke →
 * plugin function in one trace (the SDK passes the trace header on). When off, nothing of the
 * tracer is loaded: it is a separate chunk, not part of a handler's init code.
 */
import type { Tracer } from "@aws-lambda-powertools/tracer";
import { inLambda, SERVICE_NAME } from "./logger.js";

export const tracingEnabled = (env: NodeJS.ProcessEnv = process.env): boolean => env.DAEMON_TRACING === "true";

let tracer: Tracer | undefined;

/** Loads the tracer when tracing is on in a Lambda function; resolves to it, or undefined. */
export async function startTracing(): Promise<Tracer | undefined> {
  if (tracer || !tracingEnabled() || !inLambda()) return tracer;
  const { Tracer } = await import("@aws-lambda-powertools/tracer");
  tracer = new Tracer({ serviceName: SERVICE_NAME, captureHTTPsRequests: true });
  return tracer;
}

export const activeTracer = (): Tracer | undefined => tracer;

/** An AWS SDK v3 client, captured by the tracer when tracing is on. */
export function traced<T>(client: T): T {
  return tracer ? tracer.captureAWSv3Client(client) : client;
}

/** TracingConfig for the plugin functions the install worker creates. */
export const pluginTracingConfig = (): { TracingConfig?: { Mode: "Active" } } =>
  tracingEnabled() ? { TracingConfig: { Mode: "Active" } } : {};
