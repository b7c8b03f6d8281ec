/**
 * A stand-in for Dify's inner API (`/inner/api/*`) on loopback HTTP, answering in Dify's real
 * formats: `{data, error}` documents, streamed answers either length-prefixed (newer Dify: 0x0F
 * frames) or as lines (older Dify: `{json}\n\n` with `event:` lines mixed in). It checks
 * X-Inner-Api-Key like Dify (404 on a wrong key), records every request, and can be told to be
 * slow or to fail per path. Like Dify it refuses a request whose fields do not fit the path's
 * request model (HTTP 400, `invalid_param`), and it serves the signed upload URL it hands out
 * for `upload/file/request` (Dify's /files/upload/for-plugin).
 */
import { createHmac } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import busboy from "busboy";

export type StreamFraming = "length-prefixed" | "lines";

export interface RecordedRequest {
  path: string;
  headers: IncomingMessage["headers"];
  body: Record<string, unknown>;
}

/** A file a plugin posted to the signed upload URL. */
export interface ReceivedUpload {
  query: Record<string, string>;
  filename: string;
  mimetype: string;
  content: Buffer;
}

/** What a handler produces: one document (HTTP 200 unless told), or a list of chunks to stream. */
export type Answer = { document: unknown; status?: number } | { chunks: unknown[]; delayMs?: number };
export type Handler = (body: Record<string, unknown>, fake: FakeDifyInnerApi) => Answer | Promise<Answer>;

/** Dify's endpoint encrypter stand-in: secret-input values are wrapped, others kept. */
const SECRET_PREFIX = "encrypted:";

export class FakeDifyInnerApi {
  readonly requests: RecordedRequest[] = [];
  readonly uploads: ReceivedUpload[] = [];
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
    this.uploads.length = 0;
    this.overrides.clear();
    this.framing = "length-prefixed";
    this.delayMs = 0;
  }

  requestsTo(path: string): RecordedRequest[] {
    return this.requests.filter((r) => r.path === path);
  }

  /** A signed upload URL like the one Dify hands out: an HMAC over the upload's facts, checked on upload. */
  signedUploadUrl(filename: string, mimetype: string, tenantId: string, userId: string): string {
    const timestamp = String(Math.floor(Date.now() / 1000));
    const nonce = Math.random().toString(16).slice(2);
    const sign = this.uploadSignature(filename, mimetype, tenantId, userId, timestamp, nonce);
    const query = new URLSearchParams({ timestamp, nonce, sign, tenant_id: tenantId, user_id: userId });
    return `${this.url}/files/upload/for-plugin?${query}`;
  }

  private uploadSignature(...facts: string[]): string {
    return createHmac("sha256", this.key)
      .update(`upload|${facts.join("|")}`)
      .digest("base64url");
  }

  /** POST /files/upload/for-plugin: multipart field `file`, answered 201 with Dify's file fields. */
  private async receiveUpload(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const query = Object.fromEntries(new URL(req.url ?? "", "http://fake").searchParams);
    const file = await new Promise<{ filename: string; mimetype: string; content: Buffer } | undefined>(
      (resolve, reject) => {
        let found: { filename: string; mimetype: string; content: Buffer } | undefined;
        const parser = busboy({ headers: req.headers });
        parser.on("file", (name, stream, info) => {
          const parts: Buffer[] = [];
          stream.on("data", (d: Buffer) => parts.push(d));
          stream.on("end", () => {
            if (name === "file")
              found = { filename: info.filename ?? "", mimetype: info.mimeType, content: Buffer.concat(parts) };
          });
        });
        parser.on("close", () => resolve(found));
        parser.on("error", reject);
        req.pipe(parser);
      },
    );
    const expected =
      file &&
      this.uploadSignature(
        file.filename,
        file.mimetype,
        query.tenant_id ?? "",
        query.user_id ?? "",
        query.timestamp ?? "",
        query.nonce ?? "",
      );
    if (!file || !query.sign || query.sign !== expected) {
      res
        .writeHead(403, { "content-type": "application/json" })
        .end(JSON.stringify({ code: "forbidden", message: "Invalid request.", status: 403 }));
      return;
    }
    this.uploads.push({ query, ...file });
    const id = `file-${this.uploads.length}`;
    const extension = file.filename.includes(".") ? file.filename.split(".").pop()! : "";
    res.writeHead(201, { "content-type": "application/json" }).end(
      JSON.stringify({
        id,
        name: file.filename,
        size: file.content.length,
        extension,
        mime_type: file.mimetype,
        created_by: query.user_id,
        created_at: Math.floor(Date.now() / 1000),
        preview_url: null,
        source_url: `${this.url}/files/${id}/file-preview`,
      }),
    );
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method === "POST" && req.url?.startsWith("/files/upload/for-plugin?")) return this.receiveUpload(req, res);
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
    const problem = checks[path]?.(body);
    const answer = problem ? invalid(problem) : await handler(body, this);
    if ("document" in answer) {
      res.writeHead(answer.status ?? 200, { "content-type": "application/json" }).end(JSON.stringify(answer.document));
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
            prompt_tokens: 1,
            prompt_unit_price: 0,
            prompt_price_unit: 0,
            prompt_price: 0,
            completion_tokens: words.length,
            completion_unit_price: 0,
            completion_price_unit: 0,
            completion_price: 0,
            total_tokens: words.length + 1,
            total_price: 0,
            currency: "USD",
            latency: 0.1,
          },
        }),
      },
    },
    error: "",
  }));
}

function crypt(body: Record<string, unknown>): Answer {
  const data = (body.data as Record<string, unknown> | null) ?? {};
  const secrets = new Set(
    ((body.config as Array<{ name?: string; type?: string }>) ?? [])
      .filter((c) => c.type === "secret-input")
      .map((c) => c.name),
  );
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(data)) {
    if (!secrets.has(k) || typeof v !== "string") out[k] = v;
    else if (body.opt === "encrypt") out[k] = SECRET_PREFIX + Buffer.from(v).toString("base64");
    else out[k] = v.startsWith(SECRET_PREFIX) ? Buffer.from(v.slice(SECRET_PREFIX.length), "base64").toString() : v;
  }
  return ok({ data: body.opt === "clear" ? {} : out });
}

/** Dify's answer to a request its payload model rejects: a ValueError, which its API turns into HTTP 400. */
const invalid = (message: string): Answer => ({
  document: { code: "invalid_param", message: `invalid payload: ${message}`, status: 400 },
  status: 400,
});

type Body = Record<string, unknown>;
const str = (v: unknown) => typeof v === "string";
const list = (v: unknown) => Array.isArray(v);
const words = (text: unknown) =>
  String(text ?? "")
    .split(/\s+/)
    .filter(Boolean);
const hex = (text: string) => Buffer.from(text, "utf8").toString("hex");
const usage = (tokens: number) => ({
  tokens,
  total_tokens: tokens,
  unit_price: 0,
  price_unit: 0,
  total_price: 0,
  currency: "USD",
  latency: 0.1,
});

/** The first field that does not fit Dify's request model for the path (core/plugin/entities/request.py), if any. */
function firstProblem(body: Body, fields: Record<string, (v: unknown) => boolean>): string | undefined {
  for (const [name, fits] of Object.entries(fields))
    if (!fits(body[name])) return `${name}: ${JSON.stringify(body[name] ?? null)} does not fit`;
  return undefined;
}
const model = { provider: str, model: str };
const nodeModel = (v: unknown) => !!v && str((v as Body).provider) && str((v as Body).name) && str((v as Body).mode);
const checks: Record<string, (body: Body) => string | undefined> = {
  "invoke/text-embedding": (b) => firstProblem(b, { ...model, texts: list }),
  "invoke/multimodal-embedding": (b) =>
    firstProblem(b, {
      ...model,
      documents: (v) => list(v) && (v as Body[]).every((d) => str(d.content) && str(d.content_type)),
    }),
  "invoke/rerank": (b) => firstProblem(b, { ...model, query: str, docs: list }),
  "invoke/multimodal-rerank": (b) =>
    firstProblem(b, { ...model, query: (v) => !!v && str((v as Body).content), docs: list }),
  "invoke/tts": (b) => firstProblem(b, { ...model, content_text: str, voice: str }),
  "invoke/speech2text": (b) =>
    firstProblem(b, { ...model, file: (v) => str(v) && /^(?:[0-9a-f]{2})*$/i.test(v as string) }),
  "invoke/moderation": (b) => firstProblem(b, { ...model, text: str }),
  "invoke/llm/structured-output": (b) => firstProblem(b, { ...model, mode: str, prompt_messages: list }),
  // Dify's ParameterConfig: name, type, description (str) and required (bool) are all required.
  "invoke/parameter-extractor": (b) =>
    firstProblem(b, {
      parameters: (v) =>
        list(v) &&
        (v as Body[]).every((p) => str(p.name) && str(p.type) && str(p.description) && typeof p.required === "boolean"),
      model: nodeModel,
      instruction: str,
      query: str,
    }),
  "invoke/question-classifier": (b) =>
    firstProblem(b, {
      classes: (v) => list(v) && (v as Body[]).every((c) => str(c.id) && str(c.name)),
      model: nodeModel,
      instruction: str,
      query: str,
    }),
  "invoke/app": (b) =>
    firstProblem(b, {
      app_id: str,
      inputs: (v) => !!v && typeof v === "object",
      response_mode: (v) => v === "blocking" || v === "streaming",
    }),
  "upload/file/request": (b) => firstProblem(b, { filename: str, mimetype: str }),
};

/** Like llmChunks, with the structured output on the last chunk: the prompt's words. */
export function structuredOutputChunks(body: Body): unknown[] {
  const chunks = llmChunks(body) as Array<{ data: Body }>;
  const messages = (body.prompt_messages as Array<{ content?: unknown }> | undefined) ?? [];
  chunks.at(-1)!.data.structured_output = { words: words(messages.at(-1)?.content) };
  return chunks;
}

/** Embeddings Dify computed: per input, [its length, its position]. */
const embeddings = (inputs: string[]) => inputs.map((text, i) => [text.length, i]);

/** Rerank as a model would: documents mentioning a query word score 0.9, others 0.05; threshold and top_n applied. */
function rerank(query: string, docs: string[], threshold: unknown, topN: unknown) {
  const terms = words(query.toLowerCase());
  return docs
    .map((text, index) => ({
      index,
      text,
      score: terms.some((t) => text.toLowerCase().includes(t.replace(/s$/, ""))) ? 0.9 : 0.05,
    }))
    .filter((d) => typeof threshold !== "number" || d.score >= threshold)
    .sort((a, b) => b.score - a.score)
    .slice(0, typeof topN === "number" ? topN : undefined);
}

/** The apps the fake tenant has, by id, as Dify's app generators answer them. */
function runApp(body: Body): Answer {
  const now = 1_700_000_000;
  const inputs = body.inputs as Body;
  switch (body.app_id) {
    case "chat-app": {
      if (!body.query) return invalid("missing query");
      const answer = words(`You said: ${String(body.query)}`);
      const common = {
        task_id: "t1",
        message_id: "m1",
        conversation_id: body.conversation_id || "conv-new",
        created_at: now,
      };
      return {
        chunks: [
          ...answer.map((w, i) => ({
            data: { event: "message", ...common, id: "m1", answer: i === 0 ? w : ` ${w}` },
            error: "",
          })),
          {
            data: { event: "message_end", ...common, id: "m1", metadata: { usage: { total_tokens: answer.length } } },
            error: "",
          },
        ],
      };
    }
    case "completion-app": {
      const answer = `Completed: ${String(inputs.text ?? "")}`;
      const document = {
        event: "message",
        task_id: "t2",
        id: "m2",
        message_id: "m2",
        mode: "completion",
        answer,
        metadata: {},
        created_at: now,
      };
      // Blocking: Dify's generator returns the whole response, which it sends as the stream's one chunk.
      return { chunks: [{ data: document, error: "" }] };
    }
    case "workflow-app": {
      const run = { task_id: "t3", workflow_run_id: "run-1" };
      return {
        chunks: [
          {
            data: {
              event: "workflow_started",
              ...run,
              data: { id: "run-1", workflow_id: "wf-1", inputs, created_at: now },
            },
            error: "",
          },
          {
            data: {
              event: "node_finished",
              ...run,
              data: { id: "n1", node_id: "upper", node_type: "code", status: "succeeded" },
            },
            error: "",
          },
          {
            data: {
              event: "workflow_finished",
              ...run,
              data: {
                id: "run-1",
                status: "succeeded",
                outputs: { upper: String(inputs.text ?? "").toUpperCase() },
                total_steps: 1,
                created_at: now,
              },
            },
            error: "",
          },
        ],
      };
    }
    default:
      return invalid("app not found");
  }
}

const defaults: Record<string, Handler> = {
  "invoke/encrypt": crypt,
  "invoke/llm": (body) => ({ chunks: llmChunks(body) }),
  "invoke/llm/structured-output": (body) => ({ chunks: structuredOutputChunks(body) }),
  "invoke/tool": (body) => ({
    chunks: [
      {
        data: {
          type: "text",
          message: { text: `tool ${String(body.provider)}/${String(body.tool)} says:` },
          meta: null,
        },
        error: "",
      },
      {
        data: {
          type: "text",
          message: { text: String((body.tool_parameters as Record<string, unknown>)?.text ?? "") },
          meta: null,
        },
        error: "",
      },
    ],
  }),
  "invoke/text-embedding": (body) => {
    const texts = body.texts as string[];
    return ok({ model: body.model, embeddings: embeddings(texts), usage: usage(texts.join("").length) });
  },
  "invoke/multimodal-embedding": (body) => {
    const contents = (body.documents as Array<{ content: string }>).map((d) => d.content);
    return ok({ model: body.model, embeddings: embeddings(contents), usage: usage(contents.length) });
  },
  "invoke/rerank": (body) =>
    ok({
      model: body.model,
      docs: rerank(String(body.query), body.docs as string[], body.score_threshold, body.top_n),
    }),
  "invoke/multimodal-rerank": (body) => {
    const docs = (body.docs as Array<{ content: string }>).map((d) => d.content);
    return ok({
      model: body.model,
      docs: rerank(String((body.query as Body).content), docs, body.score_threshold, body.top_n),
    });
  },
  // Dify streams the audio as it comes, each piece hex-encoded; here one piece per word.
  "invoke/tts": (body) => ({
    chunks: words(body.content_text).map((w, i) => ({ data: { result: hex(i === 0 ? w : ` ${w}`) }, error: "" })),
  }),
  "invoke/speech2text": (body) => ok({ result: `heard: ${Buffer.from(String(body.file), "hex").toString("utf8")}` }),
  "invoke/moderation": (body) => ok({ result: /\bbad\b/i.test(String(body.text)) }),
  "invoke/app": runApp,
  "invoke/parameter-extractor": (body) => {
    const query = String(body.query);
    const parameters = body.parameters as Array<{ name: string; type: string }>;
    const outputs: Body = { __is_success: 1, __reason: null };
    for (const p of parameters)
      outputs[p.name] =
        p.type === "number" ? Number(query.match(/\d+/)?.[0] ?? 0) : (query.match(/\b[A-Z][a-z]+\b/)?.[0] ?? "");
    return ok({
      inputs: { query },
      process_data: { model_mode: (body.model as Body).mode, instruction: body.instruction },
      outputs,
    });
  },
  "invoke/question-classifier": (body) => {
    const query = String(body.query).toLowerCase();
    const classes = body.classes as Array<{ id: string; name: string }>;
    const chosen = classes.find((c) => query.includes(c.name.toLowerCase())) ?? classes.at(-1)!;
    return ok({
      inputs: { query: body.query },
      process_data: { model_mode: (body.model as Body).mode },
      outputs: { class_name: chosen.name, class_id: chosen.id },
    });
  },
  "invoke/summary": (body) => ok({ summary: String(body.text ?? "").slice(0, 10) }),
  "upload/file/request": (body, fake) =>
    ok({
      url: fake.signedUploadUrl(
        String(body.filename),
        String(body.mimetype),
        String(body.tenant_id),
        String(body.user_id),
      ),
    }),
  "fetch/app/info": (body) => ok({ data: { app_id: body.app_id, name: "app" } }),
};

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
