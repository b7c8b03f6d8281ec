/**
 * A stand-in for Dify's inner API (`/inner/api/*`) on loopback HTTP, answering in Dify's real
 * formats: `{data, error}` documents, streamed answers either length-prefixed (newer Dify: 0x0F
 * frames) or as lines (older Dify: `{json}\n\n` with `event:` lines mixed in). It checks
 * X-Inner-Api-Key like Dify (404 on a wrong key), records every request, and can be told to be
 * slow or to fail per path.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export type StreamFraming = "length-prefixed" | "lines";

export interface RecordedRequest {
  path: string;
  headers: IncomingMessage["headers"];
  body: Record<string, unknown>;
}

/** What a handler produces: one document, or a list of chunks to stream. */
export type Answer = { document: unknown } | { chunks: unknown[]; delayMs?: number };
export type Handler = (body: Record<string, unknown>) => Answer | Promise<Answer>;

/** Dify's endpoint encrypter stand-in: secret-input values are wrapped, others kept. */
const SECRET_PREFIX = "encrypted:";

export class FakeDifyInnerApi {
  readonly requests: RecordedRequest[] = [];
  framing: StreamFraming = "length-prefixed";
  /** Delay before any answer (to test the daemon's timeout). */
  delayMs = 0;
  private readonly overrides = new Map<string, Handler>();
  private server: Server | undefined;
  private readonly sockets = new Set<import("node:net").Socket>();

  constructor(readonly key = "inner-api-key") {}

  get url(): string {
    return `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
  }

  async start(port = 0): Promise<this> {
    this.server = createServer((req, res) => void this.serve(req, res));
    this.server.on("connection", (s) => {
      this.sockets.add(s);
      s.on("close", () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => this.server!.listen(port, "127.0.0.1", resolve));
    return this;
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    this.server = undefined;
  }

  /** Replaces the default answer for one path (e.g. "invoke/llm"); undefined restores it. */
  on(path: string, handler: Handler | undefined): void {
    if (handler) this.overrides.set(path, handler);
    else this.overrides.delete(path);
  }

  reset(): void {
    this.requests.length = 0;
    this.overrides.clear();
    this.framing = "length-prefixed";
    this.delayMs = 0;
  }

  requestsTo(path: string): RecordedRequest[] {
    return this.requests.filter((r) => r.path === path);
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const parts: Buffer[] = [];
    for await (const chunk of req) parts.push(chunk as Buffer);
    const path = (req.url ?? "").replace(/^\/inner\/api\//, "").split("?")[0] ?? "";
    if (req.headers["x-inner-api-key"] !== this.key || !req.url?.startsWith("/inner/api/")) {
      res.writeHead(404, { "content-type": "text/html" }).end("<h1>Not Found</h1>");
      return;
    }
    const body = JSON.parse(Buffer.concat(parts).toString("utf8") || "{}") as Record<string, unknown>;
    this.requests.push({ path, headers: req.headers, body });
    if (this.delayMs) await sleep(this.delayMs);
    if (res.destroyed) return;
    const handler = this.overrides.get(path) ?? defaults[path];
    if (!handler) {
      res.writeHead(404, { "content-type": "text/html" }).end("<h1>Not Found</h1>");
      return;
    }
    const answer = await handler(body);
    if ("document" in answer) {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(answer.document));
      return;
    }
    res.writeHead(200, { "content-type": "text/event-stream" });
    for (const chunk of answer.chunks) {
      if (answer.delayMs) await sleep(answer.delayMs);
      if (res.destroyed) return;
      res.write(this.frame(JSON.stringify(chunk)));
    }
    res.end();
  }

  private frame(json: string): Buffer {
    const data = Buffer.from(json, "utf8");
    if (this.framing === "lines") return Buffer.from(`${json}\n\nevent: ping\n\n`, "utf8");
    const head = Buffer.alloc(14);
    head.writeUInt8(0x0f, 0);
    head.writeUInt16LE(0x0a, 2);
    head.writeUInt32LE(data.length, 4);
    return Buffer.concat([head, data]);
  }
}

const ok = (data: unknown): Answer => ({ document: { data, error: "" } });

/** An LLM answer: one chunk per word of the last user message, echoed back, with usage at the end. */
export function llmChunks(body: Record<string, unknown>): unknown[] {
  const messages = (body.prompt_messages as Array<{ content?: unknown }> | undefined) ?? [];
  const text = String(messages.at(-1)?.content ?? "");
  const words = text.split(" ");
  return words.map((word, i) => ({
    data: {
      model: String(body.model ?? "model"),
      prompt_messages: [],
      system_fingerprint: null,
      delta: {
        index: i,
        message: { role: "assistant", content: i === 0 ? word : ` ${word}`, tool_calls: [] },
        ...(i === words.length - 1 && {
          finish_reason: "stop",
          usage: {
            prompt_tokens: 1, prompt_unit_price: 0, prompt_price_unit: 0, prompt_price: 0,
            completion_tokens: words.length, completion_unit_price: 0, completion_price_unit: 0, completion_price: 0,
            total_tokens: words.length + 1, total_price: 0, currency: "USD", latency: 0.1,
          },
        }),
      },
    },
    error: "",
  }));
}

function crypt(body: Record<string, unknown>): Answer {
  const data = (body.data as Record<string, unknown> | null) ?? {};
  const secrets = new Set(((body.config as Array<{ name?: string; type?: string }>) ?? []).filter((c) => c.type === "secret-input").map((c) => c.name));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(data)) {
    if (!secrets.has(k) || typeof v !== "string") out[k] = v;
    else if (body.opt === "encrypt") out[k] = SECRET_PREFIX + Buffer.from(v).toString("base64");
    else out[k] = v.startsWith(SECRET_PREFIX) ? Buffer.from(v.slice(SECRET_PREFIX.length), "base64").toString() : v;
  }
  return ok({ data: body.opt === "clear" ? {} : out });
}

const defaults: Record<string, Handler> = {
  "invoke/encrypt": crypt,
  "invoke/llm": (body) => ({ chunks: llmChunks(body) }),
  "invoke/tool": (body) => ({
    chunks: [
      { data: { type: "text", message: { text: `tool ${String(body.provider)}/${String(body.tool)} says:` }, meta: null }, error: "" },
      { data: { type: "text", message: { text: String((body.tool_parameters as Record<string, unknown>)?.text ?? "") }, meta: null }, error: "" },
    ],
  }),
  "invoke/text-embedding": () => ok({ model: "emb", embeddings: [[0.1, 0.2]], usage: { tokens: 1, total_tokens: 1, unit_price: 0, price_unit: 0, total_price: 0, currency: "USD", latency: 0.1 } }),
  "invoke/summary": (body) => ok({ summary: String(body.text ?? "").slice(0, 10) }),
  "upload/file/request": () => ok({ url: "http://files.example/upload?sig=1" }),
  "fetch/app/info": (body) => ok({ data: { app_id: body.app_id, name: "app" } }),
};

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
