/**
 * Keep-alive for streamed answers behind API Gateway, which cuts a stream silent for 5 minutes
 * ("For Regional or private endpoints, the timeout is 5 minutes",
 * https://docs.aws.amazon.com/apigateway/latest/developerguide/response-transfer-mode.html) while a
 * plugin may think for up to PLUGIN_MAX_EXECUTION_TIMEOUT (10 minutes by default).
 *
 * The keep-alive is a blank line: Dify's reader skips empty lines (api/core/plugin/impl/base.py,
 * `_stream_request` on `iter_lines`) and so does the plugin bootstrap reading backwards-invocation
 * answers. Before the first chunk the response is held back, because Dify's first-token timeout
 * is a read timeout on the response and headers sent early would defeat it; only a plugin silent
 * for `firstChunkWaitMs` (4 minutes by default, under the 5-minute cut) gets its response started
 * with a blank line. After that, every `idleMs` of silence gets one.
 */
import type { DaemonResponse } from "../http/daemon-response.js";
import type { Route } from "../http/router.js";

export interface KeepAliveTiming {
  /** Silence after which a blank line is sent, once the answer has started. */
  idleMs: number;
  /** Silence before the first chunk after which the answer is started with a blank line. */
  firstChunkWaitMs: number;
}

const BLANK_LINE = "\n";

/** A streaming group's timing, chosen by the composition root. */
export interface KeepAliveDeps {
  keepAlive: KeepAliveTiming;
}

/** The group's routes, with keep-alive on every streamed (line-based) answer. */
export function withKeepAlive<D>(routes: (deps: D) => Route[]): (deps: D & KeepAliveDeps) => Route[] {
  return (deps) =>
    routes(deps).map(
      (route): Route => ({ ...route, handler: async (req) => keptAlive(await route.handler(req), deps.keepAlive) }),
    );
}

function keptAlive(res: DaemonResponse, timing: KeepAliveTiming): DaemonResponse {
  if (res.kind !== "stream" || timing.idleMs <= 0) return res;
  // Line-based answers only: a blank line inside a raw body (an endpoint's HTTP answer) would corrupt it.
  const type = res.headers["content-type"] ?? "";
  if (!/^(text\/event-stream|application\/x-ndjson)/.test(type)) return res;
  return { ...res, body: keepAlive(res.body, timing) };
}

/** `body`, with a blank line whenever it has been silent for the current allowance. */
export async function* keepAlive<T extends Uint8Array | string>(
  body: AsyncIterable<T>,
  timing: KeepAliveTiming,
): AsyncGenerator<T | string> {
  const iterator = body[Symbol.asyncIterator]();
  let pending: Promise<IteratorResult<T>> | undefined;
  let started = false;
  let done = false;
  try {
    for (;;) {
      pending ??= iterator.next();
      const wait = started ? timing.idleMs : Math.max(timing.idleMs, timing.firstChunkWaitMs);
      let timer: NodeJS.Timeout | undefined;
      const silence = new Promise<"silent">((resolve) => (timer = setTimeout(() => resolve("silent"), wait)));
      const next = await Promise.race([pending, silence]).finally(() => clearTimeout(timer));
      if (next === "silent") {
        started = true;
        yield BLANK_LINE;
        continue;
      }
      pending = undefined;
      if (next.done) {
        done = true;
        return;
      }
      started = true;
      yield next.value;
    }
  } finally {
    // The reader stopped early (Dify went away): let the source clean up, without waiting for it.
    if (!done) void iterator.return?.()?.catch(() => undefined);
  }
}
