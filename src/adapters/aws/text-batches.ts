/**
 * Text embedding and token counting requests too large for one Lambda invocation (6 MB request
 * payload), split into serial batches of whole texts and their answers merged back into one, as
 * upstream's serverless runtime does (langgenius/dify-plugin-daemon,
 * internal/core/io_tunnel/model_serverless_batch.go at bdb5642: splitTextRequest,
 * coordinateTextEmbeddingBatches, coordinateTokenCountBatches, mergeTextEmbeddingResult). A
 * single text that does not fit alone fails the request, naming its index.
 *
 * Pure: the payload size of a candidate batch is measured by the caller's function.
 */
export const BATCHED_ACTIONS = new Set(["invoke_text_embedding", "get_text_embedding_num_tokens"]);

export interface TextBatch {
  /** Index of the batch's first text in the original request. */
  offset: number;
  texts: unknown[];
}

export class BatchTooLargeError extends Error {
  constructor(
    readonly itemIndex: number | undefined,
    readonly payloadBytes: number,
    readonly maxBytes: number,
  ) {
    super(
      itemIndex === undefined
        ? `ServerlessPayloadTooLarge: the request without its texts is ${payloadBytes} bytes, over the ${maxBytes}-byte limit`
        : `ServerlessPayloadTooLarge: text ${itemIndex} alone makes a ${payloadBytes}-byte request, over the ${maxBytes}-byte limit`,
    );
    this.name = "BatchTooLargeError";
  }
}

/** The request's texts, if it is one that may be split. */
export function batchableTexts(data: Record<string, unknown>): unknown[] | undefined {
  return BATCHED_ACTIONS.has(String(data.action)) && Array.isArray(data.texts) ? data.texts : undefined;
}

/**
 * Consecutive batches whose payloads (`payloadBytes(texts)`) stay within `maxBytes`, estimated
 * as upstream does: the empty request plus each text's JSON and a comma, then checked exactly.
 */
export function splitTexts(
  texts: readonly unknown[],
  maxBytes: number,
  payloadBytes: (texts: unknown[]) => number,
): TextBatch[] {
  const empty = payloadBytes([]);
  if (empty > maxBytes) throw new BatchTooLargeError(undefined, empty, maxBytes);
  const batches: TextBatch[] = [];
  let start = 0;
  let estimate = empty;
  const close = (end: number) => {
    const slice = texts.slice(start, end);
    const exact = payloadBytes(slice);
    if (exact > maxBytes) throw new Error(`batch size estimate mismatch: ${exact} > ${maxBytes} bytes`);
    batches.push({ offset: start, texts: slice });
  };
  texts.forEach((text, i) => {
    const size = Buffer.byteLength(JSON.stringify(text));
    const next = estimate + size + (i > start ? 1 : 0);
    if (next <= maxBytes) {
      estimate = next;
      return;
    }
    if (i === start) throw new BatchTooLargeError(i, payloadBytes([text]), maxBytes);
    close(i);
    start = i;
    estimate = empty + size;
    if (estimate > maxBytes) throw new BatchTooLargeError(i, payloadBytes([text]), maxBytes);
  });
  if (start < texts.length || texts.length === 0) close(texts.length);
  return batches;
}

/** Merges one answer per batch, in order, into the answer for the whole request; throws on a mismatch. */
export function mergeBatchAnswers(action: string, batches: readonly TextBatch[], answers: readonly unknown[]): unknown {
  if (action === "get_text_embedding_num_tokens") {
    const counts = answers.flatMap((answer, i) => {
      const numTokens = (answer as { num_tokens?: unknown })?.num_tokens;
      if (!Array.isArray(numTokens) || numTokens.length !== batches[i]!.texts.length) throw mismatch(i, "token_count");
      return numTokens;
    });
    return { num_tokens: counts };
  }
  // A dynamic document: the first batch's answer, extended in place by the others.
  // biome-ignore lint/suspicious/noExplicitAny: fields are checked one by one above before use
  let merged: Record<string, any> | undefined;
  answers.forEach((answer, i) => {
    const result = answer as { model?: unknown; embeddings?: unknown; usage?: Record<string, unknown> };
    if (!Array.isArray(result?.embeddings) || result.embeddings.length !== batches[i]!.texts.length)
      throw mismatch(i, "embedding_count");
    const usage = result.usage;
    if (
      !usage ||
      ["tokens", "total_tokens", "currency", "latency"].some((k) => usage[k] === undefined || usage[k] === null)
    ) {
      throw mismatch(i, "missing_usage_field");
    }
    if (!merged) {
      merged = { ...result, embeddings: [...result.embeddings], usage: { ...usage } };
      return;
    }
    if (result.model !== merged.model) throw mismatch(i, "model");
    if (usage.currency !== merged.usage.currency) throw mismatch(i, "currency");
    if (!sameDecimal(usage.unit_price, merged.usage.unit_price)) throw mismatch(i, "unit_price");
    if (!sameDecimal(usage.price_unit, merged.usage.price_unit)) throw mismatch(i, "price_unit");
    merged.embeddings.push(...result.embeddings);
    merged.usage.tokens = Number(merged.usage.tokens) + Number(usage.tokens);
    merged.usage.total_tokens = Number(merged.usage.total_tokens) + Number(usage.total_tokens);
    merged.usage.latency = Number(merged.usage.latency) + Number(usage.latency);
    merged.usage.total_price = addDecimals(merged.usage.total_price, usage.total_price);
  });
  return merged;
}

function mismatch(batchIndex: number, reason: string): Error {
  return new Error(`ServerlessBatchResultMismatch: batch ${batchIndex}: ${reason}`);
}

/** Decimals as plugins send them (pydantic: a string, sometimes a number), added without binary rounding. */
export function addDecimals(a: unknown, b: unknown): unknown {
  const [x, y] = [decimal(a), decimal(b)];
  const scale = Math.max(x.scale, y.scale);
  const sum = x.units * 10n ** BigInt(scale - x.scale) + y.units * 10n ** BigInt(scale - y.scale);
  const negative = sum < 0n;
  const digits = (negative ? -sum : sum).toString().padStart(scale + 1, "0");
  const text = `${negative ? "-" : ""}${scale ? `${digits.slice(0, -scale)}.${digits.slice(-scale)}` : digits}`;
  return typeof a === "number" ? Number(text) : text;
}

function sameDecimal(a: unknown, b: unknown): boolean {
  const [x, y] = [decimal(a), decimal(b)];
  const scale = Math.max(x.scale, y.scale);
  return x.units * 10n ** BigInt(scale - x.scale) === y.units * 10n ** BigInt(scale - y.scale);
}

function decimal(value: unknown): { units: bigint; scale: number } {
  let text = value === undefined || value === null ? "0" : String(value).trim();
  // Exponent notation (a float such as 1e-05): written out, which keeps its digits.
  if (/e/i.test(text) && Number.isFinite(Number(text)))
    text = Number(text)
      .toFixed(20)
      .replace(/\.?0+$/, "");
  const match = /^(-?)(\d*)(?:\.(\d*))?$/.exec(text);
  if (!match) throw new Error(`not a decimal: ${text}`);
  const [, sign, whole = "", fraction = ""] = match;
  const units = BigInt(`${sign}${whole || "0"}${fraction}`);
  return { units, scale: fraction.length };
}
