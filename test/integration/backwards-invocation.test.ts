/**
 * Backwards invocations from real plugin processes (the backwards-tool fixture on the real SDK)
 * through the local daemon to a fake Dify inner API, and the Lambda callback route
 * /backwards-invocation/transaction over real HTTP.
 *
 * Every invocation type the SDK can make, except storage (which the daemon keeps itself), is a row
 * of `relayed` below: the tool the fixture runs, the path and body Dify's inner API received,
 * whether Dify streams the answer, and what the plugin got back.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { pluginDirectory } from "../../src/adapters/local/plugin-environment.js";
import { ExecutionEnvironment } from "../../src/aws-local/execution-environment.js";
import type { PluginUniqueIdentifier } from "../../src/domain/identifier.js";
import { parsePluginLine, toSessionOutput } from "../../src/domain/plugin-protocol.js";
import { sessionCallbackToken } from "../../src/domain/session-token.js";
import { serve } from "../../src/http/pipeline.js";
import { Router } from "../../src/http/router.js";
import type { PluginRuntime, SessionOutput } from "../../src/ports/plugin-runtime.js";
import { backwardsInvocationRoutes } from "../../src/routes/backwards-invocation.js";
import { Dispatcher } from "../../src/services/dispatcher.js";
import { registeringSessions } from "../../src/services/session-registry.js";
import { type PluginSession, PluginSessions } from "../../src/stores/plugin-sessions.js";
import { FakeDifyInnerApi, llmChunks } from "../support/fake-dify-inner-api.js";
import { packFixture } from "../support/fixture-packages.js";
import { LAYER_BOOTSTRAP } from "../support/lambda-sandboxes.js";
import { installPackage, readEvents, startTestDaemon, TEST_KEY, type TestDaemon } from "../support/local-daemon.js";

const T = "22222222-aaaa-bbbb-cccc-333333333333";
const PLUGIN = "fixtures/backwards-tool";
/** The model provider the fixture's tools name. */
const PROVIDER = "fixtures/fake-models/fake";
/** What the fixture sends as an image to multimodal models (base64). */
const IMAGE = Buffer.from("\x89PNG not really an image", "latin1").toString("base64");
/** The same plugin packaged under another name with one permission family switched off. */
const WITHOUT = {
  "no-model-tool": "model",
  "no-tool-tool": "tool",
  "no-app-tool": "app",
  "no-node-tool": "node",
} as const;
let d: TestDaemon;
let inner: FakeDifyInnerApi;
let uid: PluginUniqueIdentifier;

const install = (pkg: Uint8Array) => installPackage(d, T, pkg);

function manifestWithout(name: string, family: string): string {
  const manifest = parseYaml(
    readFileSync(new URL("../fixtures/plugins/backwards-tool/manifest.yaml", import.meta.url), "utf8"),
  );
  expect(manifest.resource.permission[family]).toBeDefined();
  delete manifest.resource.permission[family];
  return stringifyYaml({ ...manifest, name });
}

beforeAll(async () => {
  inner = await new FakeDifyInnerApi().start();
  d = await startTestDaemon({
    DIFY_INNER_API_URL: inner.url,
    DIFY_INNER_API_KEY: inner.key,
    DIFY_BACKWARDS_INVOCATION_READ_TIMEOUT: "3000",
    PLUGIN_MAX_EXECUTION_TIMEOUT: "30",
  });
  uid = await install(await packFixture("backwards-tool"));
  for (const [name, family] of Object.entries(WITHOUT)) {
    await install(await packFixture("backwards-tool", { files: { "manifest.yaml": manifestWithout(name, family) } }));
  }
}, 900_000);
afterAll(async () => {
  await d?.stop();
  await inner?.stop();
});
beforeEach(() => inner.reset());

function callTool(tool: string, params: Record<string, unknown>, pluginId = PLUGIN) {
  return d
    .call(`/plugin/${T}/dispatch/tool/invoke`, {
      method: "POST",
      headers: { "x-plugin-id": pluginId },
      json: {
        user_id: "u1",
        data: { provider: "backwards", tool, credentials: {}, credential_type: "api-key", tool_parameters: params },
      },
    })
    .then(readEvents);
}
const messages = (events: Array<{ data: unknown }>) => events.map((e) => (e.data as any)?.message);
/** The plugin's own error text, out of Dify's double-encoded PluginInvokeError. */
const pluginError = (events: Array<{ code: number; message: string }>) => {
  const last = events.at(-1)!;
  expect(last.code).toBe(-500);
  return (JSON.parse(JSON.parse(last.message).message) as { message: string }).message;
};

/** A session as the daemon registers it for a Lambda plugin, and the token its callbacks carry. */
async function lambdaSession(accessType = "tool") {
  const sessionId = crypto.randomUUID();
  await d.stores().pluginSessions.register({
    session_id: sessionId,
    tenant_id: T,
    user_id: "u9",
    plugin_unique_identifier: uid,
    access_type: accessType,
    access_action: "invoke_tool",
    conversation_id: "c1",
    message_id: null,
    app_id: null,
    endpoint_id: null,
    context: null,
  });
  return { sessionId, token: sessionCallbackToken(sessionId, T, TEST_KEY) };
}

/** One invoke message posted to /backwards-invocation/transaction as the SDK's HTTP mode does. */
function transact(sessionId: string, token: string, type: string, request: Record<string, unknown>) {
  const event = {
    event: "session",
    session_id: sessionId,
    data: { type: "invoke", data: { type, backwards_request_id: "r1", request } },
  };
  return fetch(`${d.url}/backwards-invocation/transaction`, {
    method: "POST",
    headers: { "Dify-Plugin-Session-ID": sessionId, "X-Dify-Plugin-Callback-Token": token },
    body: `${JSON.stringify(event)}\n\n`,
  });
}

const lines = async (res: Response) =>
  (await res.text())
    .split("\n")
    .filter((l) => l.trim())
    .map(
      (l) =>
        JSON.parse(l) as {
          session_id: string;
          event: string;
          conversation_id: string | null;
          data: { backwards_request_id: string; event: string; message: string; data: any };
        },
    );

describe("storage kept by the daemon", () => {
  it("round-trips set, exist, get and delete", async () => {
    const events = await callTool("storage_roundtrip", { key: "greeting", value: "héllo" });
    expect(messages(events)).toEqual([
      { text: "héllo" },
      { json_object: { key: "greeting", existed: true, value: "héllo", exists_after_delete: false } },
    ]);
    expect(await d.stores().pluginStorage.usage(T, PLUGIN)).toBe(0);
    expect(inner.requests).toHaveLength(0);
  });

  it("keeps large values in the blob store", async () => {
    const value = "x".repeat(300 * 1024);
    const events = await callTool("storage_roundtrip", { key: "big", value });
    expect((messages(events)[1] as any).json_object).toMatchObject({ existed: true, exists_after_delete: false });
    expect((messages(events)[0] as any).text).toHaveLength(value.length);
  });

  it("refuses a value past the manifest's storage size and stores nothing", async () => {
    const events = await callTool("storage_roundtrip", { key: "too-big", value: "y".repeat(1_100_000) });
    expect(pluginError(events)).toContain("save data failed: allocated size is greater than max storage size");
    expect(await d.stores().pluginStorage.exists(T, PLUGIN, "too-big")).toBe(false);
    expect(await d.stores().pluginStorage.usage(T, PLUGIN)).toBe(0);
  });
});

describe("calls relayed to Dify's inner API", () => {
  it("streams an LLM answer (length-prefixed framing) with tenant, user and type added", async () => {
    const events = await callTool("call_llm", {
      prompt: "one two three",
      provider: "langgenius/openai/openai",
      model: "gpt-x",
    });
    expect(messages(events)).toEqual([{ text: "one two three" }]);
    const [call] = inner.requestsTo("invoke/llm");
    expect(call?.headers["x-inner-api-key"]).toBe(inner.key);
    expect(call?.body).toMatchObject({
      tenant_id: T,
      user_id: "u1",
      type: "llm",
      provider: "langgenius/openai/openai",
      model: "gpt-x",
      mode: "chat",
      stream: true,
      prompt_messages: [{ role: "user", content: "one two three" }],
    });
  });

  it("reads the older line framing too", async () => {
    inner.framing = "lines";
    const events = await callTool("call_llm", { prompt: "a b c d" });
    expect(messages(events)).toEqual([{ text: "a b c d" }]);
  });

  it("relays a tool's streamed messages", async () => {
    const events = await callTool("call_tool", { provider: "langgenius/time/time", tool: "now", text: "hello" });
    expect(messages(events)).toEqual([{ text: "tool langgenius/time/time/now says:" }, { text: "hello" }]);
    expect(inner.requestsTo("invoke/tool")[0]?.body).toMatchObject({
      tenant_id: T,
      user_id: "u1",
      type: "tool",
      tool_type: "builtin",
      provider: "langgenius/time/time",
      tool: "now",
      tool_parameters: { text: "hello" },
    });
  });

  it("passes Dify's own error on to the plugin", async () => {
    inner.on("invoke/llm", () => ({ chunks: [{ data: null, error: "quota exceeded" }] }));
    const events = await callTool("call_llm", { prompt: "hi" });
    expect(pluginError(events)).toContain("invoke llm model failed: request failed: quota exceeded");
  });

  it("tells the plugin clearly when Dify is down", async () => {
    const port = Number(new URL(inner.url).port);
    await inner.stop();
    try {
      const events = await callTool("call_llm", { prompt: "hi" });
      expect(pluginError(events)).toMatch(
        /invoke llm model failed: Dify inner API is unreachable at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/,
      );
    } finally {
      await inner.start(port);
    }
  });

  it("gives up on a slow Dify after the read timeout, and stores no endpoint whose settings it could not encrypt", async () => {
    inner.delayMs = 6000;
    const events = await callTool("call_llm", { prompt: "hi" });
    expect(pluginError(events)).toContain("Dify inner API did not answer invoke/llm within 3s");

    const setup = (await (
      await d.call(`/plugin/${T}/endpoint/setup`, {
        method: "POST",
        json: { plugin_unique_identifier: uid, user_id: "u1", settings: { api_key: "secret" }, name: "slow" },
      })
    ).json()) as any;
    expect(setup.code).toBe(-500);
    expect(JSON.parse(setup.message).message).toMatch(/^failed to encrypt settings: Dify inner API did not answer/);
    inner.delayMs = 0;
    const list = (await (await d.call(`/plugin/${T}/endpoint/list?page=1&page_size=10`)).json()) as any;
    expect(list.data).toEqual([]);
  }, 30_000);
});

interface RelayedCase {
  /** The invocation type the SDK sends. */
  type: string;
  tool: string;
  params: Record<string, unknown>;
  /** Where Dify's inner API received it, and whether Dify streams the answer. */
  path: string;
  streamed: boolean;
  /** Fields of the body Dify received, besides tenant_id, user_id and type. */
  body: Record<string, unknown>;
  /** The messages the plugin yielded from what the SDK parsed. */
  result: unknown[];
}

const json = (json_object: unknown) => ({ json_object });
const chatModel = { provider: PROVIDER, model: "fake-chat", mode: "chat", completion_params: { temperature: 0 } };
const nodeModel = { provider: PROVIDER, name: "fake-chat", mode: "chat", completion_params: { temperature: 0 } };

const relayed: RelayedCase[] = [
  {
    type: "llm",
    tool: "call_llm",
    params: { prompt: "one two", provider: PROVIDER, model: "fake-chat" },
    path: "invoke/llm",
    streamed: true,
    body: {
      provider: PROVIDER,
      model: "fake-chat",
      model_type: "llm",
      mode: "chat",
      prompt_messages: [{ role: "user", content: "one two" }],
      stream: true,
    },
    result: [{ text: "one two" }],
  },
  {
    type: "tool",
    tool: "call_tool",
    params: { provider: "langgenius/time/time", tool: "now", text: "hello" },
    path: "invoke/tool",
    streamed: true,
    body: { tool_type: "builtin", provider: "langgenius/time/time", tool: "now", tool_parameters: { text: "hello" } },
    result: [{ text: "tool langgenius/time/time/now says:" }, { text: "hello" }],
  },
  {
    type: "llm_structured_output",
    tool: "call_model",
    params: { kind: "llm_structured_output", text: "red green blue" },
    path: "invoke/llm/structured-output",
    streamed: true,
    body: {
      ...chatModel,
      model_type: "llm",
      prompt_messages: [{ role: "user", content: "red green blue" }],
      structured_output_schema: { type: "object", properties: { words: { type: "array", items: { type: "string" } } } },
      stream: false,
    },
    result: [json({ text: "red green blue", structured_output: { words: ["red", "green", "blue"] }, total_tokens: 4 })],
  },
  {
    type: "text_embedding",
    tool: "call_model",
    params: { kind: "text_embedding", text: "a|bb|ccc" },
    path: "invoke/text-embedding",
    streamed: false,
    body: {
      provider: PROVIDER,
      model: "fake-embedding",
      model_type: "text-embedding",
      texts: ["a", "bb", "ccc"],
      input_type: "document",
    },
    result: [
      json({
        model: "fake-embedding",
        embeddings: [
          [1, 0],
          [2, 1],
          [3, 2],
        ],
        tokens: 6,
      }),
    ],
  },
  {
    type: "multimodal_embedding",
    tool: "call_model",
    params: { kind: "multimodal_embedding", text: "hello" },
    path: "invoke/multimodal-embedding",
    streamed: false,
    // The SDK's config carries a tenant_id of the plugin's choosing; Dify gets the session's (asserted for every row).
    body: {
      provider: PROVIDER,
      model: "fake-multimodal-embedding",
      documents: [
        { content: "hello", content_type: "text" },
        { content: IMAGE, content_type: "image" },
      ],
      input_type: "query",
    },
    result: [
      json({
        model: "fake-multimodal-embedding",
        embeddings: [
          [5, 0],
          [IMAGE.length, 1],
        ],
        tokens: 2,
      }),
    ],
  },
  {
    type: "rerank",
    tool: "call_model",
    params: { kind: "rerank", text: "cats purr|dogs bark|dog food" },
    path: "invoke/rerank",
    streamed: false,
    body: {
      provider: PROVIDER,
      model: "fake-rerank",
      model_type: "rerank",
      query: "dogs",
      docs: ["cats purr", "dogs bark", "dog food"],
      score_threshold: 0.1,
      top_n: 2,
    },
    result: [
      json({
        model: "fake-rerank",
        docs: [
          { index: 1, text: "dogs bark", score: 0.9 },
          { index: 2, text: "dog food", score: 0.9 },
        ],
      }),
    ],
  },
  {
    type: "multimodal_rerank",
    tool: "call_model",
    params: { kind: "multimodal_rerank", text: "text" },
    path: "invoke/multimodal-rerank",
    streamed: false,
    body: {
      provider: PROVIDER,
      model: "fake-multimodal-rerank",
      query: { content: "text", content_type: "text" },
      docs: [
        { content: "a text document", content_type: "text" },
        { content: IMAGE, content_type: "image" },
      ],
      score_threshold: null,
      top_n: 1,
    },
    result: [json({ model: "fake-multimodal-rerank", docs: [{ index: 0, text: "a text document", score: 0.9 }] })],
  },
  {
    type: "tts",
    tool: "call_model",
    params: { kind: "tts", text: "hello plugin world" },
    path: "invoke/tts",
    streamed: true,
    body: {
      provider: PROVIDER,
      model: "fake-tts",
      model_type: "tts",
      voice: "alloy",
      content_text: "hello plugin world",
    },
    result: [json({ chunks: 3, audio: "hello plugin world" })],
  },
  {
    type: "speech2text",
    tool: "call_model",
    params: { kind: "speech2text", text: "ping" },
    path: "invoke/speech2text",
    streamed: false,
    body: {
      provider: PROVIDER,
      model: "fake-whisper",
      model_type: "speech2text",
      file: Buffer.from("ping").toString("hex"),
    },
    result: [json({ transcript: "heard: ping" })],
  },
  {
    type: "moderation",
    tool: "call_model",
    params: { kind: "moderation", text: "a bad word" },
    path: "invoke/moderation",
    streamed: false,
    body: { provider: PROVIDER, model: "fake-moderation", model_type: "moderation", text: "a bad word" },
    result: [json({ flagged: true })],
  },
  {
    type: "app",
    tool: "call_app",
    params: { mode: "chat", app_id: "chat-app", text: "hi there" },
    path: "invoke/app",
    streamed: true,
    body: {
      app_id: "chat-app",
      query: "hi there",
      inputs: { tone: "dry" },
      response_mode: "streaming",
      conversation_id: "conv-1",
      user: null,
    },
    result: [
      json({ events: ["message", "message", "message", "message", "message_end"], answer: "You said: hi there" }),
    ],
  },
  {
    type: "app",
    tool: "call_app",
    params: { mode: "completion", app_id: "completion-app", text: "draft" },
    path: "invoke/app",
    streamed: true,
    body: { app_id: "completion-app", inputs: { text: "draft" }, response_mode: "blocking", user: null },
    result: [
      json({
        result: {
          event: "message",
          task_id: "t2",
          id: "m2",
          message_id: "m2",
          mode: "completion",
          answer: "Completed: draft",
          metadata: {},
          created_at: 1_700_000_000,
        },
      }),
    ],
  },
  {
    type: "app",
    tool: "call_app",
    params: { mode: "workflow", app_id: "workflow-app", text: "shout" },
    path: "invoke/app",
    streamed: true,
    body: { app_id: "workflow-app", inputs: { text: "shout" }, response_mode: "streaming", user: null },
    result: [json({ events: ["workflow_started", "node_finished", "workflow_finished"], outputs: { upper: "SHOUT" } })],
  },
  {
    type: "node_parameter_extractor",
    tool: "call_node",
    params: { kind: "parameter_extractor", text: "how warm is Paris in 3 days" },
    path: "invoke/parameter-extractor",
    streamed: false,
    // The fixture leaves one description as None, which the SDK allows and Dify's model does not:
    // the daemon sends "" as upstream's typed request does.
    body: {
      parameters: [
        { name: "city", type: "string", options: [], description: "The city asked about", required: true },
        { name: "days", type: "number", options: [], description: "", required: false },
      ],
      model: nodeModel,
      query: "how warm is Paris in 3 days",
      instruction: "Extract the city and the number of days.",
    },
    result: [
      json({
        inputs: { query: "how warm is Paris in 3 days" },
        process_data: { model_mode: "chat", instruction: "Extract the city and the number of days." },
        outputs: { city: "Paris", days: 3, __is_success: 1, __reason: null },
      }),
    ],
  },
  {
    type: "node_question_classifier",
    tool: "call_node",
    params: { kind: "question_classifier", text: "will it rain? weather please" },
    path: "invoke/question-classifier",
    streamed: false,
    body: {
      classes: [
        { id: "c1", name: "weather" },
        { id: "c2", name: "other" },
      ],
      model: nodeModel,
      query: "will it rain? weather please",
      instruction: "",
    },
    result: [
      json({
        inputs: { query: "will it rain? weather please" },
        process_data: { model_mode: "chat" },
        outputs: { class_name: "weather", class_id: "c1" },
      }),
    ],
  },
  {
    type: "upload_file",
    tool: "upload_file",
    params: { text: "file body", filename: "note.txt", mimetype: "text/plain" },
    path: "upload/file/request",
    streamed: false,
    body: { filename: "note.txt", mimetype: "text/plain" },
    // What Dify's /files/upload/for-plugin answered the SDK's post to the signed URL.
    result: [
      json({
        id: "file-1",
        name: "note.txt",
        size: 9,
        extension: "txt",
        mime_type: "text/plain",
        type: "document",
        preview_url: null,
        app_parameter: { tool_file_id: "file-1", transfer_method: "tool_file", type: "document" },
      }),
    ],
  },
  {
    type: "system_summary",
    tool: "call_unary",
    params: { kind: "summary", text: "a long text to summarize" },
    path: "invoke/summary",
    streamed: false,
    body: { text: "a long text to summarize", instruction: "be short" },
    result: [json({ summary: "a long tex" })],
  },
  {
    type: "fetch_app",
    tool: "call_unary",
    params: { kind: "fetch_app", text: "app-1" },
    path: "fetch/app/info",
    streamed: false,
    body: { app_id: "app-1" },
    result: [json({ app: { app_id: "app-1", name: "app" } })],
  },
];

const rows = relayed.map((c) => ({ ...c, via: `${c.tool} ${String(c.params.kind ?? c.params.mode ?? "")}`.trim() }));

describe("every invocation type the SDK makes, relayed to Dify's inner API", () => {
  it.each(rows)("$type via $via → $path", async ({ type, tool, params, path, streamed, body, result }) => {
    const events = await callTool(tool, params);
    expect(messages(events), JSON.stringify(events)).toEqual(result);
    const received = inner.requestsTo(path);
    expect(received).toHaveLength(1);
    expect(inner.requests).toHaveLength(1);
    expect(received[0]!.headers["x-inner-api-key"]).toBe(inner.key);
    expect(received[0]!.body).toMatchObject({ ...body, tenant_id: T, user_id: "u1", type });

    // The same request from a Lambda plugin's callback: the same body reaches Dify, and the answer
    // comes back as stream events or one struct.
    const { tenant_id: _t, user_id: _u, type: _type, ...request } = received[0]!.body;
    const { sessionId, token } = await lambdaSession();
    const replayed = await lines(await transact(sessionId, token, type, request));
    expect(inner.requests[1]?.body).toEqual({ ...received[0]!.body, user_id: "u9" });
    const kinds = replayed.map((e) => `${e.data.event}:${e.data.message}`);
    expect(kinds.at(-1)).toBe("end:");
    expect(new Set(kinds.slice(0, -1))).toEqual(new Set([streamed ? "response:stream" : "response:struct"]));
    if (!streamed) expect(kinds).toHaveLength(2);
  });

  it("hands the plugin's file to Dify's signed upload URL", async () => {
    await callTool("upload_file", { text: "file body", filename: "report.csv", mimetype: "text/csv" });
    expect(inner.uploads).toHaveLength(1);
    const [upload] = inner.uploads;
    expect(upload).toMatchObject({
      filename: "report.csv",
      mimetype: "text/csv",
      query: { tenant_id: T, user_id: "u1" },
    });
    expect(upload!.content.toString()).toBe("file body");
  });
});

const refused = [
  { family: "model", plugin: "no-model-tool", tool: "call_llm", params: { prompt: "hi" }, access: "llm" },
  {
    family: "model",
    plugin: "no-model-tool",
    tool: "call_model",
    params: { kind: "text_embedding", text: "a" },
    access: "text-embedding",
  },
  { family: "tool", plugin: "no-tool-tool", tool: "call_tool", params: { text: "hi" }, access: "tool" },
  {
    family: "app",
    plugin: "no-app-tool",
    tool: "call_app",
    params: { mode: "chat", app_id: "chat-app", text: "hi" },
    access: "app",
  },
  {
    family: "node",
    plugin: "no-node-tool",
    tool: "call_node",
    params: { kind: "question_classifier", text: "hi" },
    access: "node",
  },
];

describe("permissions the manifest switches off", () => {
  it.each(refused)(
    "without $family: $tool is refused with upstream's message for $access",
    async ({ plugin, tool, params, access }) => {
      const events = await callTool(tool, params, `fixtures/${plugin}`);
      expect(pluginError(events)).toContain(
        `permission denied, you need to enable ${access} access in plugin manifest`,
      );
      expect(inner.requests).toHaveLength(0);
    },
  );
});

describe("Lambda callbacks: POST /backwards-invocation/transaction", () => {
  it("serves storage for a registered session and frames events as upstream", async () => {
    const { sessionId, token } = await lambdaSession();
    const res = await transact(sessionId, token, "storage", {
      opt: "set",
      key: "cb",
      value: Buffer.from("via lambda").toString("hex"),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    const events = await lines(res);
    expect(events.map((e) => [e.event, e.data.event, e.data.message, e.data.data])).toEqual([
      ["backwards_response", "response", "struct", { data: "ok" }],
      ["backwards_response", "end", "", null],
    ]);
    expect(events[0]).toMatchObject({
      session_id: sessionId,
      conversation_id: "c1",
      data: { backwards_request_id: "r1" },
    });
    const got = await lines(await transact(sessionId, token, "storage", { opt: "get", key: "cb" }));
    expect(Buffer.from(got[0]!.data.data.data, "hex").toString()).toBe("via lambda");
  });

  it("relays a streamed LLM answer event by event", async () => {
    const { sessionId, token } = await lambdaSession();
    const events = await lines(
      await transact(sessionId, token, "llm", {
        provider: "p",
        model: "m",
        mode: "chat",
        prompt_messages: [{ role: "user", content: "x y" }],
      }),
    );
    expect(events.map((e) => e.data.message)).toEqual(["stream", "stream", ""]);
    expect(
      events
        .slice(0, 2)
        .map((e) => e.data.data.delta.message.content)
        .join(""),
    ).toBe("x y");
    expect(inner.requestsTo("invoke/llm")[0]?.body).toMatchObject({ tenant_id: T, user_id: "u9", type: "llm" });
  });

  it("rejects a tampered callback token and does nothing", async () => {
    const { sessionId, token } = await lambdaSession();
    const tampered = `${token.slice(0, -2)}${token.endsWith("AA") ? "BB" : "AA"}`;
    const res = await transact(sessionId, tampered, "storage", { opt: "set", key: "forged", value: "00" });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({
      backwards_request_id: "r1",
      event: "error",
      data: { error_type: "Unauthorized" },
    });
    const other = await lambdaSession();
    expect((await transact(sessionId, other.token, "storage", { opt: "set", key: "forged", value: "00" })).status).toBe(
      401,
    );
    expect((await transact(sessionId, "", "storage", { opt: "set", key: "forged", value: "00" })).status).toBe(401);
    expect(await d.stores().pluginStorage.exists(T, PLUGIN, "forged")).toBe(false);
  });

  it("answers an unknown session like upstream (SessionNotFound)", async () => {
    const sessionId = crypto.randomUUID();
    const res = await transact(sessionId, sessionCallbackToken(sessionId, T, TEST_KEY), "storage", {
      opt: "exist",
      key: "k",
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({
      event: "error",
      message: "failed to get session info from cache",
      data: { error_type: "SessionNotFound", session_id: sessionId },
    });
  });

  it("sends blank-line heartbeats while Dify is slow to answer", async () => {
    const { sessionId, token } = await lambdaSession();
    inner.on("invoke/llm", (body) => ({ chunks: llmChunks(body), delayMs: 350 }));
    const router = new Router(
      backwardsInvocationRoutes({
        ...d.daemon.groups["backwards-invocation"],
        callbackSecret: async () => TEST_KEY,
        heartbeatMs: 100,
      }),
    );
    const event = {
      event: "session",
      session_id: sessionId,
      data: {
        type: "invoke",
        data: { type: "llm", backwards_request_id: "r2", request: { prompt_messages: [{ content: "p q" }] } },
      },
    };
    const res = await serve(
      router,
      {
        method: "POST",
        path: "/backwards-invocation/transaction",
        params: {},
        query: new URLSearchParams(),
        headers: { "dify-plugin-session-id": sessionId, "x-dify-plugin-callback-token": token },
        body: Buffer.from(JSON.stringify(event)),
      },
      async () => TEST_KEY,
    );
    expect(res.kind).toBe("stream");
    const parts: string[] = [];
    if (res.kind === "stream") for await (const part of res.body) parts.push(String(part));
    const kinds = parts.map((p) => (p === "\n\n" ? "beat" : (JSON.parse(p) as { data: { event: string } }).data.event));
    expect(kinds.filter((k) => k !== "beat")).toEqual(["response", "response", "end"]);
    expect(kinds.indexOf("beat")).toBeLessThan(kinds.indexOf("response"));
    expect(kinds.filter((k) => k === "beat").length).toBeGreaterThanOrEqual(4);
  });

  it("refuses any call back from a session serving a model", async () => {
    const { sessionId, token } = await lambdaSession("model");
    const events = await lines(await transact(sessionId, token, "storage", { opt: "exist", key: "k" }));
    expect(events.map((e) => [e.data.event, e.data.message])).toEqual([
      ["error", "you can not invoke dify from model"],
      ["end", ""],
    ]);
  });
});

describe("a plugin under the real Lambda bootstrap calling back over HTTP", () => {
  let sandbox: ExecutionEnvironment;

  beforeAll(async () => {
    // The installed plugin directory (with its venv) as the function's code.
    const taskRoot = pluginDirectory(join(d.dataDir, "plugins"), uid);
    sandbox = await ExecutionEnvironment.start({
      command: LAYER_BOOTSTRAP,
      args: [inject("pythonPath"), "-m", "awslambdaric", "bootstrap.handler"],
      taskRoot,
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        HOME: process.env.HOME ?? "/tmp",
        DIFY_PLUGIN_PYTHON: join(taskRoot, ".venv", "bin", "python"),
        DIFY_PLUGIN_STARTUP_TIMEOUT: "60",
        PYTHONDONTWRITEBYTECODE: "1",
      },
    });
  }, 120_000);
  afterAll(async () => sandbox?.stop());

  /** A runtime sending each session to the sandbox as the Lambda runtime does, callback token included. */
  const lambdaLike: PluginRuntime = {
    install: async () => undefined,
    isInstalled: async () => true,
    remove: async () => undefined,
    close: async () => undefined,
    async *invoke(_uid, request, options): AsyncGenerator<SessionOutput> {
      const callback = { url: d.url, token: sessionCallbackToken(request.session_id, options.tenantId, TEST_KEY) };
      const payload = new TextEncoder().encode(JSON.stringify({ request, callback, timeout_seconds: 60 }));
      let buffered = "";
      for await (const part of sandbox.api.invoke(payload, {
        timeoutMs: 60_000,
        functionArn: "arn:aws:lambda:us-east-1:000000000000:function:test",
      })) {
        if (part.kind === "error") throw new Error(`${part.errorType}: ${part.errorMessage}`);
        buffered += Buffer.from(part.bytes).toString("utf8");
        const lines = buffered.split("\n");
        buffered = lines.pop() ?? "";
        for (const line of lines) {
          const event = parsePluginLine(line);
          const output = event?.event === "session" ? toSessionOutput(event.data) : undefined;
          if (output) yield output;
        }
      }
    },
  };

  /** The daemon's session store, noting what gets registered. */
  const registered: PluginSession[] = [];
  class RecordingSessions extends PluginSessions {
    override async register(session: PluginSession) {
      registered.push(session);
      await super.register(session);
    }
  }

  const run = (tool: string, params: Record<string, unknown>) =>
    new Dispatcher(
      registeringSessions(lambdaLike, new RecordingSessions(d.stores().items)),
      60,
      d.daemon.groups["backwards-invocation"].backwards.factory,
    ).stream({
      tenantId: T,
      uniqueIdentifier: uid,
      action: { type: "tool", action: "invoke_tool" },
      userId: "u-lambda",
      data: { provider: "backwards", tool, credentials: {}, credential_type: "api-key", tool_parameters: params },
    });
  const collect = async (chunks: AsyncIterable<string>) => {
    let text = "";
    for await (const c of chunks) text += c;
    return text
      .split("\n")
      .filter((l) => l.startsWith("data: "))
      .map((l) => JSON.parse(l.slice(6)) as { code: number; message: string; data: unknown });
  };

  it("serves storage through /backwards-invocation/transaction", async () => {
    const events = await collect(run("storage_roundtrip", { key: "lambda-key", value: "from lambda" }));
    expect(messages(events), JSON.stringify(events) + sandbox.output.slice(-2000)).toEqual([
      { text: "from lambda" },
      { json_object: { key: "lambda-key", existed: true, value: "from lambda", exists_after_delete: false } },
    ]);
  }, 120_000);

  it.each(rows)(
    "$type via $via, the SDK calling back over HTTP",
    async ({ type, tool, params, path, body, result }) => {
      const events = await collect(run(tool, params));
      expect(messages(events), JSON.stringify(events)).toEqual(result);
      expect(inner.requestsTo(path)[0]?.body).toMatchObject({ ...body, tenant_id: T, user_id: "u-lambda", type });
    },
    120_000,
  );

  it("relays a streamed LLM answer to the plugin and forgets the session afterwards", async () => {
    const events = await collect(run("call_llm", { prompt: "over the bridge" }));
    expect(messages(events)).toEqual([{ text: "over the bridge" }]);
    const [call] = inner.requestsTo("invoke/llm");
    expect(call?.body).toMatchObject({ tenant_id: T, user_id: "u-lambda", type: "llm" });
    const session = registered.at(-1)!;
    expect(session).toMatchObject({
      tenant_id: T,
      user_id: "u-lambda",
      plugin_unique_identifier: uid,
      access_type: "tool",
      access_action: "invoke_tool",
    });
    expect(await d.stores().pluginSessions.get(session.session_id)).toBeUndefined();
  }, 120_000);
});
