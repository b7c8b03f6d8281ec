/**
 * The raw HTTP/1.1 request a plugin endpoint receives (hex-encoded as `raw_http_request`).
 * Upstream clones the incoming request, applies its header rules (drops IP traces, restores the
 * original Host, adds Dify-Hook-Id / Dify-Hook-Url) and writes it with Go's `http.Request.Write`.
 * The SDK parses those exact bytes, so this reproduces Go's serialization: request line with the
 * path re-escaped and the query re-encoded in key order, Host and User-Agent first, then the
 * framing header, then the other headers sorted by name, then the body.
 */

/** What the daemon knows of an incoming public endpoint request. */
export interface IncomingEndpointRequest {
  method: string;
  /** The path inside the endpoint (the part after `/e/{hook_id}`), decoded. */
  path: string;
  query: URLSearchParams;
  /** Header names lower-cased (one value per name, as API Gateway and Node give them). */
  headers: Record<string, string>;
  body: Uint8Array;
}

/** Headers upstream removes before handing the request to a plugin ("remove ip traces"). */
const STRIPPED_HEADERS = [
  "x-forwarded-for",
  "x-real-ip",
  "x-forwarded",
  "x-original-forwarded-for",
  "x-original-url",
  "x-original-host",
];

/** Headers Go writes itself (or never), so they are not copied from the header map. */
const WRITTEN_SEPARATELY = new Set(["host", "user-agent", "content-length", "transfer-encoding", "trailer"]);

/** Go's default User-Agent, written when the caller sent none. */
const GO_USER_AGENT = "Go-http-client/1.1";

/** Methods for which Go drops an empty body entirely (it probes them); others get a chunked empty body. */
const USUALLY_BODYLESS = new Set(["GET", "HEAD", "DELETE", "OPTIONS", "PROPFIND", "SEARCH"]);

/** The raw request bytes upstream would send the plugin for this endpoint call. */
export function rawEndpointRequest(req: IncomingEndpointRequest, hookId: string): Buffer {
  const headers = new Map<string, string>();
  for (const [name, value] of Object.entries(req.headers)) headers.set(name.toLowerCase(), value);
  const originalHost = headers.get("x-original-host") || headers.get("host") || "";
  for (const name of STRIPPED_HEADERS) headers.delete(name);
  headers.set("dify-hook-id", hookId);
  if (!headers.get("dify-hook-url")) {
    // Upstream also checks for a TLS connection; behind API Gateway the scheme comes from X-Forwarded-Proto.
    const scheme = headers.get("x-forwarded-proto") === "https" ? "https" : "http";
    headers.set("dify-hook-url", `${scheme}://${originalHost}/e/${hookId}${req.path}`);
  }
  return writeHttpRequest({
    method: req.method,
    path: req.path,
    query: req.query,
    host: originalHost,
    headers,
    body: req.body,
  });
}

export interface HttpRequestParts {
  method: string;
  path: string;
  query: URLSearchParams;
  host: string;
  /** Lower-case names. */
  headers: Map<string, string>;
  body: Uint8Array;
}

/** Go's `(*http.Request).Write` for a request whose body is fully in memory. */
export function writeHttpRequest(r: HttpRequestParts): Buffer {
  const method = r.method || "GET";
  const query = encodeQuery(r.query);
  const target = (escapePath(r.path) || "/") + (query ? `?${query}` : "");
  const lines = [`${method} ${target} HTTP/1.1`, `Host: ${r.host}`];

  const userAgent = r.headers.has("user-agent") ? r.headers.get("user-agent")! : GO_USER_AGENT;
  if (userAgent !== "") {
    const cleaned = cleanValue(userAgent);
    if (cleaned !== "") lines.push(`User-Agent: ${cleaned}`);
  }

  // Framing, as Go's transferWriter decides it for a body of known length.
  let body: Uint8Array = r.body;
  if (r.body.length > 0) {
    lines.push(`Content-Length: ${r.body.length}`);
  } else if (!USUALLY_BODYLESS.has(method) && method !== "CONNECT") {
    // An empty but present body on POST/PUT/PATCH… has unknown length to Go: it is sent chunked.
    lines.push("Transfer-Encoding: chunked");
    body = Buffer.from("0\r\n\r\n");
  }

  const rest = [...r.headers.entries()]
    .filter(([name]) => !WRITTEN_SEPARATELY.has(name))
    .map(([name, value]) => [canonicalHeaderKey(name), value] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [name, value] of rest) lines.push(`${name}: ${cleanValue(value)}`);

  return Buffer.concat([Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1"), body]);
}

/** Header values: newlines become spaces, then surrounding ASCII whitespace is trimmed (Go's writeSubset). */
function cleanValue(value: string): string {
  return value.replace(/[\r\n]/g, " ").replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, "");
}

/**
 * Go's textproto.CanonicalMIMEHeaderKey: first letter and letters after '-' upper case, the rest
 * lower case. Names with characters outside the token set are left as they are.
 */
export function canonicalHeaderKey(name: string): string {
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) return name;
  let upper = true;
  let out = "";
  for (const c of name) {
    out += upper ? c.toUpperCase() : c.toLowerCase();
    upper = c === "-";
  }
  return out;
}

/** url.Values.Encode: keys sorted, each value query-escaped, `k=v` joined by `&`. */
function encodeQuery(query: URLSearchParams): string {
  const keys = [...new Set(query.keys())].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return keys.flatMap((k) => query.getAll(k).map((v) => `${goEscape(k, "query")}=${goEscape(v, "query")}`)).join("&");
}

/** url.URL.EscapedPath for a path whose raw form was replaced. */
function escapePath(path: string): string {
  return path === "*" ? "*" : goEscape(path, "path");
}

const UNRESERVED = /[A-Za-z0-9\-_.~]/;
const PATH_SAFE = /[$&+,/:;=@]/;

/** Go's url.escape for the path and query-component modes. */
function goEscape(text: string, mode: "path" | "query"): string {
  let out = "";
  for (const byte of Buffer.from(text, "utf8")) {
    const c = String.fromCharCode(byte);
    if (byte < 0x80 && (UNRESERVED.test(c) || (mode === "path" && PATH_SAFE.test(c)))) out += c;
    else if (mode === "query" && c === " ") out += "+";
    else out += `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}
