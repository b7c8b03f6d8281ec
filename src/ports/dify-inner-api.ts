/**
 * Dify's inner API (`{DIFY_INNER_API_URL}/inner/api/...`, key in X-Inner-Api-Key): where the
 * daemon forwards plugins' backwards invocations and encrypts endpoint settings. Answers are
 * `{data, error}` documents, or streams of them for LLM, TTS, tool and app calls.
 * Adapter: src/adapters/http-dify-inner-api.ts.
 */

import type { InnerApiPath } from "../domain/invoke-types.js";

export type { InnerApiPath };

/** A call Dify could not serve: unreachable, timed out, non-JSON, or `{error}` in the answer. */
export class InnerApiError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InnerApiError";
  }
}

export interface DifyInnerApi {
  /** One `{data, error}` answer; resolves to `data` (throws InnerApiError on `error` or no data). */
  call(path: InnerApiPath, payload: Record<string, unknown>, signal?: AbortSignal): Promise<unknown>;
  /** A streamed answer; yields each chunk's `data` (throws InnerApiError on an `error` chunk). */
  stream(path: InnerApiPath, payload: Record<string, unknown>, signal?: AbortSignal): AsyncIterable<unknown>;
}
