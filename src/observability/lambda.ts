/**
 * What every Lambda handler does around an invocation (a middy middleware; nothing in the local
 * daemon, whose server does the same per HTTP request): the invocation's log context and
 * Powertools Logger's Lambda context, the EMF exporter and Powertools' ColdStart metric, the
 * tracer when tracing is on, and the HTTP request metric when the event came from API Gateway —
 * for a streamed answer when its last chunk is written.
 */
import { Readable } from "node:stream";
import type { MiddlewareObj } from "@middy/core";
import type { Context } from "aws-lambda";
import { createEmfExporter, type EmfExporter } from "./emf-exporter.js";
import { routeGroupOf } from "./http-metrics.js";
import { enterInvocationLogContext, leaveInvocationLogContext } from "./log-context.js";
import { inLambda, powertoolsLogger } from "./logger.js";
import { metrics, secondsSince, useMetricsExporter } from "./metrics.js";
import { startTracing } from "./tracing.js";

interface HttpEvent {
  httpMethod?: string;
  path?: string;
}

interface HttpResult {
  statusCode?: number;
  body?: unknown;
}

let emf: EmfExporter | undefined;

/** Installs the EMF exporter once per execution environment. */
function emfExporter(): EmfExporter {
  if (!emf) {
    emf = createEmfExporter();
    useMetricsExporter(emf);
  }
  return emf;
}

export function lambdaObservability(): MiddlewareObj<unknown, unknown, Error, Context> {
  const startedAt = new WeakMap<object, number>();
  const active = (context: Context) => inLambda() && context?.functionName !== "local";
  const finish = (event: unknown, status: number, started: number | undefined) => {
    const e = event as HttpEvent;
    if (!e?.httpMethod || !e.path || started === undefined) return;
    metrics.httpRequest({
      routeGroup: routeGroupOf(e.path),
      route: "",
      method: e.httpMethod,
      status,
      seconds: secondsSince(started),
    });
  };
  return {
    async before(request) {
      if (!active(request.context)) return;
      startedAt.set(request as object, performance.now());
      const exporter = emfExporter();
      exporter.powertools.captureColdStartMetric(request.context.functionName);
      powertoolsLogger()?.addContext(request.context);
      enterInvocationLogContext({ request_id: request.context.awsRequestId });
      // Loaded before the handler builds its AWS clients, so they are captured (tracing.ts).
      await startTracing();
    },
    async after(request) {
      if (!active(request.context)) return;
      const started = startedAt.get(request as object);
      const result = request.response as HttpResult | undefined;
      const status = result?.statusCode ?? 200;
      if (result?.body instanceof Readable) {
        // Streamed: measured when the body is done (or abandoned), still within the invocation.
        const body = result.body;
        body.once("close", () => {
          finish(request.event, status, started);
          leaveInvocationLogContext();
        });
      } else {
        finish(request.event, status, started);
        leaveInvocationLogContext();
      }
    },
    async onError(request) {
      if (!active(request.context)) return;
      finish(request.event, 500, startedAt.get(request as object));
      leaveInvocationLogContext();
    },
  };
}
