/**
 * Async iterables handed on without an async generator per layer. A generator that awaits
 * something and then `yield*`s another iterable, or only looks at each item on its way, costs
 * promises and microtask turns for every item it passes on; these pass each `next()` straight to
 * the iterator underneath (or chain one callback on it).
 */

/** The last result of an iteration (with `return()`'s value, if any). */
export const finished = <T>(value?: unknown): IteratorResult<T> => ({ done: true, value: value as T });

/**
 * The iterable `open` gives, opened on the first `next()` (when a generator's body would start);
 * every later call goes straight to it. `return()` before opening never opens it.
 */
export function deferred<T>(open: () => AsyncIterable<T> | Promise<AsyncIterable<T>>): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<T> {
      let inner: AsyncIterator<T> | undefined;
      let opening: Promise<AsyncIterator<T>> | undefined;
      let closed = false;
      return {
        next() {
          if (inner) return inner.next();
          if (closed) return Promise.resolve(finished<T>());
          if (!opening) {
            // Opened in this call when `open` answers at once (a running plugin), without a turn
            // of the event loop; a throw becomes the rejection of this first next().
            let opened: AsyncIterable<T> | Promise<AsyncIterable<T>>;
            try {
              opened = open();
            } catch (err) {
              opened = Promise.reject(err);
            }
            if (!(opened instanceof Promise)) {
              inner = opened[Symbol.asyncIterator]();
              opening = Promise.resolve(inner);
              return inner.next();
            }
            opening = opened.then((iterable) => (inner = iterable[Symbol.asyncIterator]()));
          }
          return opening.then((it) => (closed ? finished<T>() : it.next()));
        },
        async return(value?: unknown) {
          closed = true;
          const it = inner ?? (await opening?.catch(() => undefined));
          return (await it?.return?.(value)) ?? finished<T>(value);
        },
      };
    },
  };
}

/** A few values as an async iterable (the rare paths beside a live session's outputs). */
export async function* outputsOf<T>(...values: T[]): AsyncGenerator<T> {
  yield* values;
}

/** What a watcher of an iterable is told: each step as it passes, and a failure or an early stop. */
export interface Watch<T> {
  /** The first `next()` is asked for (when a generator's body would start). */
  start?(): void;
  /** Every result, the last (`done`) one included. */
  step(result: IteratorResult<T>): void;
  /** `next()` failed with `err` (the error still reaches the reader). */
  failed?(err: unknown): void;
  /** The reader stopped before the end (`return()`), after the iterable below was told. */
  stopped?(): void;
}

/**
 * `source`, with each watcher seeing each result as it passes, in the order given: one callback
 * per item for all of them, no generator and no layer per watcher.
 */
export function watched<T>(source: AsyncIterable<T>, ...watches: Watch<T>[]): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<T> {
      const inner = source[Symbol.asyncIterator]();
      let started = false;
      const onStep = (result: IteratorResult<T>) => {
        for (const w of watches) w.step(result);
        return result;
      };
      const onError = (err: unknown): never => {
        for (const w of watches) w.failed?.(err);
        throw err;
      };
      return {
        next() {
          if (!started) {
            started = true;
            for (const w of watches) w.start?.();
          }
          return inner.next().then(onStep, onError);
        },
        async return(value?: unknown) {
          try {
            return (await inner.return?.(value)) ?? finished<T>(value);
          } finally {
            for (const w of watches) w.stopped?.();
          }
        },
      };
    },
  };
}
