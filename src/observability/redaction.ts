/**
 * What never reaches a log line: values of fields named like secrets (API keys, credentials,
 * passwords, tokens) and, anywhere in any string, the daemon key and Dify's inner-API key in
 * effect. Errors become plain {name, message, stack} objects on the way, scrubbed as well.
 */

const SECRET_FIELD =
  /^(x-api-key|x-inner-api-key|authorization|proxy-authorization|cookie|set-cookie|credentials|.*api[_-]?key|.*secret.*|.*password.*|access_token|refresh_token|session_token|token)$/i;

const REDACTED = "[REDACTED]";
/** Secrets shorter than this would redact common words; keys are far longer. */
const MIN_SECRET_LENGTH = 8;

const registered = new Set<string>();

/** A secret value read at run time (e.g. from Secrets Manager) that must never be logged. */
export function registerSecret(value: string | undefined): void {
  if (value && value.length >= MIN_SECRET_LENGTH) registered.add(value);
}

/** Read on every call: tests and the CLI set the environment after this module loads. */
function secretValues(): string[] {
  const values = [...registered];
  for (const name of ["SERVER_KEY", "DIFY_INNER_API_KEY"]) {
    const value = process.env[name];
    if (value && value.length >= MIN_SECRET_LENGTH) values.push(value);
  }
  return values;
}

export function redactText(text: string, secrets: string[] = secretValues()): string {
  let out = text;
  for (const secret of secrets) if (out.includes(secret)) out = out.split(secret).join(REDACTED);
  return out;
}

/** A copy of `value` safe to log (depth-bounded, cycles cut). */
export function redact(value: unknown, secrets: string[] = secretValues()): unknown {
  const seen = new WeakSet<object>();
  const walk = (v: unknown, depth: number): unknown => {
    if (typeof v === "string") return redactText(v, secrets);
    if (v === null || typeof v !== "object") return typeof v === "bigint" ? v.toString() : v;
    if (seen.has(v)) return "[Circular]";
    if (depth > 8) return "[Object]";
    seen.add(v);
    if (v instanceof Error) {
      const { name, message, stack } = v;
      const cause = (v as { cause?: unknown }).cause;
      return walk({ name, message, stack, ...(cause !== undefined && { cause }) }, depth + 1);
    }
    if (Buffer.isBuffer(v) || ArrayBuffer.isView(v)) return `[${v.byteLength} bytes]`;
    if (Array.isArray(v)) return v.map((item) => walk(item, depth + 1));
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(v))
      out[key] = SECRET_FIELD.test(key) && item != null && item !== "" ? REDACTED : walk(item, depth + 1);
    return out;
  };
  return walk(value, 0);
}
