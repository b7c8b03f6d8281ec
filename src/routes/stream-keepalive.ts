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
import { finished } from "../shared/lazy-iterable.js";

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
 * about 7 % of a busy local daemon's time. A plain iterator rather than an async generator: a
 * generator's own promises and turns, with the race around each chunk, were about seven
 * promises per chunk, each also tracked by the log context's AsyncLocalStorage; this is three.
 */
export function keepAlive<T extends Uint8Array | string>(
  body: AsyncIterable<T>,
  timing: KeepAliveTiming,
): AsyncIterable<T | string> {
  return { [Symbol.asyncIterator]: () => new KeptAlive(body[Symbol.asyncIterator](), timing) };
}

class KeptAlive<T extends Uint8Array | string> implements AsyncIterator<T | string> {
  /** The source's next(), while it has not answered. */
  private pulling = false;
  /** What the source answered while no read was waiting (a blank line had answered that read). */
  private early?: { result: IteratorResult<T> } | { error: unknown };
  /** The read waiting for the source or for the silence timer. */
  private reader?: { resolve(r: IteratorResult<T | string>): void; reject(err: unknown): void };
  private timer?: NodeJS.Timeout;
  private started = false;
  /** No more reads: the source ended or failed, or the reader stopped. */
  private finished = false;
  /** The source has nothing left to clean up (it ended or failed on its own). */
  private sourceOver = false;

  constructor(
    private readonly source: AsyncIterator<T>,
    private readonly timing: KeepAliveTiming,
  ) {}

  next(): Promise<IteratorResult<T | string>> {
    const early = this.early;
    if (early) {
      this.early = undefined;
      return "result" in early ? Promise.resolve(this.deliver(early.result)) : Promise.reject(early.error);
    }
    if (this.finished) return Promise.resolve(finished());
    if (!this.pulling) this.pull();
    // Armed when the reader asks for more, so the allowance counts the plugin's silence only.
    if (!this.timer) this.timer = setTimeout(this.onSilence, this.started ? this.timing.idleMs : this.firstWait());
    else this.timer.refresh();
    return new Promise((resolve, reject) => {
      this.reader = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<T | string>> {
    this.stop();
    // The reader stopped early (Dify went away): let the source clean up, without waiting for it.
    if (!this.sourceOver) void this.source.return?.()?.catch(() => undefined);
    this.sourceOver = true;
    this.take()?.resolve(finished());
    return Promise.resolve(finished());
  }

  private firstWait(): number {
    return Math.max(this.timing.idleMs, this.timing.firstChunkWaitMs);
  }

  private pull(): void {
    this.pulling = true;
    this.source.next().then(
      (result) => {
        this.pulling = false;
        const reader = this.take();
        if (reader) reader.resolve(this.deliver(result));
        else if (!this.finished) this.early = { result };
      },
      (error: unknown) => {
        this.pulling = false;
        // Told, as a generator's finally would tell it: a source that cleans up on return() does so.
        if (!this.sourceOver) void this.source.return?.()?.catch(() => undefined);
        this.sourceOver = true;
        if (this.finished) return; // the reader has stopped meanwhile
        // A failed source ends the answer: no blank line after it.
        const reader = this.take();
        this.stop();
        if (reader) reader.reject(error);
        else this.early = { error };
      },
    );
  }

  private readonly onSilence = (): void => {
    this.take()?.resolve(this.deliver({ done: false, value: BLANK_LINE }));
  };

  private take() {
    const reader = this.reader;
    this.reader = undefined;
    return reader;
  }

  /** Hands a result to the reader: the end finishes the answer, anything else starts it. */
  private deliver<V>(result: IteratorResult<V>): IteratorResult<V> {
    if (result.done) {
      this.sourceOver = true;
      this.stop();
    } else if (!this.started) {
      // From now on the allowance is the idle one.
      this.started = true;
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    return result;
  }

  private stop(): void {
    this.finished = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
