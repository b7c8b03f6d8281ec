/**
 * Dify's inner API (`{DIFY_INNER_API_URL}/inner/api/...`, key in X-Inner-Api-Key): where the
 * daemon forwards plugins' backwards invocations and encrypts endpoint settings. Answers are
 * `{data, error}` documents, or streams of them for LLM, TTS, tool and app calls.
 * Adapter: src/adapters/http-dify-inner-api.ts.
 */

/** Paths under /inner/api (dify-client.md §3). */
export type InnerApiPath =
  | "invoke/llm"
  | "invoke/llm/structured-output"
  | "invoke/text-embedding"
  | "invoke/multimodal-embedding"
  | "invoke/rerank"
  | "invoke/multimodal-rerank"
  | "invoke/tts"
  | "invoke/speech2text"
  | "invoke/moderation"
  | "invoke/tool"
  | "invoke/app"
  | "invoke/parameter-extractor"
  | "invoke/question-classifier"
  | "invoke/encrypt"
  | "invoke/summary"
  | "upload/file/request"
  | "fetch/app/info";

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
