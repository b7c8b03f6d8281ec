/**
 * Requests in flight in this process, counted the way upstream's CollectActiveRequests and
 * CollectActiveDispatchRequests middlewares count them (internal/server/controllers/health_check.go,
 * langgenius/dify-plugin-daemon@bdb5642a): every routed request, and dispatch requests apart. A
 * streamed answer stays active until its last chunk is written, as upstream's handler does.
 */
import type { DaemonResponse } from "../http/daemon-response.js";
import type { Route } from "../http/router.js";
import { finished } from "../shared/lazy-iterable.js";

const counts = { requests: 0, dispatchRequests: 0, streams: 0, ended: 0 };

export interface RequestActivity {
  activeRequests: number;
  activeDispatchRequests: number;
  /** Streamed answers still being written (dispatch, endpoints, backwards invocations). */
  activeStreams: number;
  /** Requests ended since the process started (answered, failed or given up). */
  endedRequests: number;
}

export const requestActivity = (): RequestActivity => ({
  activeRequests: counts.requests,
  activeDispatchRequests: counts.dispatchRequests,
  activeStreams: counts.streams,
  endedRequests: counts.ended,
});

const isDispatch = (pattern: string) =>
  pattern.startsWith("/plugin/:tenant_id/dispatch/") || pattern.startsWith("/v2/invoke/dispatch/");

/** The route with its requests counted while they run. */
export function counted(route: Route): Route {
  const dispatch = isDispatch(route.pattern);
  return {
    ...route,
    handler: async (req) => {
      let settled = false;
      const start = () => {
        counts.requests++;
        if (dispatch) counts.dispatchRequests++;
      };
      const end = () => {
        if (settled) return;
        settled = true;
        counts.requests--;
        counts.ended++;
        if (dispatch) counts.dispatchRequests--;
      };
      start();
      let response: DaemonResponse;
      try {
        response = await route.handler(req);
      } catch (err) {
        end();
        throw err;
      }
      if (response.kind !== "stream") {
        end();
        return response;
      }
      return { ...response, body: untilDone(response.body, end) };
    },
  };
}

/** The body, calling `end` once when it is read to the end, fails, or is given up (even before the first chunk). */
function untilDone<T>(body: AsyncIterable<T>, end: () => void): AsyncIterable<T> {
  counts.streams++;
  let open = true;
  const finish = () => {
    if (!open) return;
    open = false;
    counts.streams--;
    end();
  };
  return {
    [Symbol.asyncIterator]() {
      const inner = body[Symbol.asyncIterator]();
      return {
        // A callback on the chunk's promise, not an async function: one promise per chunk, not three.
        next: () =>
          inner.next().then(
            (step) => {
              if (step.done) finish();
              return step;
            },
            (err: unknown) => {
              finish();
              throw err;
            },
          ),
        async return(value?: unknown) {
          finish();
          return (await inner.return?.(value)) ?? finished<T>();
        },
      };
    },
  };
}
