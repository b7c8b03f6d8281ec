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

/**
 * `body`, with a blank line whenever it has been silent for the current allowance. One timer
 * serves the whole answer, re-armed at each wait: a timer and a racing promise per chunk were
 * about 7 % of a busy local daemon's time.
 */
export async function* keepAlive<T extends Uint8Array | string>(
  body: AsyncIterable<T>,
  timing: KeepAliveTiming,
): AsyncGenerator<T | string> {
  const iterator = body[Symbol.asyncIterator]();
  let pending: Promise<IteratorResult<T>> | undefined;
  let wake: ((silent: "silent") => void) | undefined;
  const firstWait = Math.max(timing.idleMs, timing.firstChunkWaitMs);
  let timer: NodeJS.Timeout | undefined;
  let started = false;
  let done = false;
  const onSilence = () => wake?.("silent");
  try {
    for (;;) {
      pending ??= iterator.next();
      const waiting = pending;
      // Armed when the reader asks for more, so the allowance counts the plugin's silence only.
      if (!timer) timer = setTimeout(onSilence, started ? timing.idleMs : firstWait);
      else timer.refresh();
      const next = await new Promise<IteratorResult<T> | "silent">((resolve, reject) => {
        wake = resolve;
        waiting.then(resolve, reject);
      });
      wake = undefined;
      if (next !== "silent") pending = undefined;
      if (next !== "silent" && next.done) {
        done = true;
        return;
      }
      if (!started) {
        started = true;
        // From now on the allowance is the idle one.
        clearTimeout(timer);
        timer = undefined;
      }
      yield next === "silent" ? BLANK_LINE : next.value;
    }
  } finally {
    clearTimeout(timer);
    // The reader stopped early (Dify went away): let the source clean up, without waiting for it.
    if (!done) void iterator.return?.()?.catch(() => undefined);
  }
}
