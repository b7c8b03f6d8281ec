/**
 * Backwards invocations from real plugin processes (the backwards-tool fixture on the real SDK)
 * through the local daemon to a fake Dify inner API, and the Lambda callback route
 * /backwards-invocation/transaction over real HTTP.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { pluginDirectory } from "../../src/adapters/local/plugin-environment.js";
import { parsePluginLine, toSessionOutput } from "../../src/domain/plugin-protocol.js";
import { sessionCallbackToken } from "../../src/domain/session-token.js";
import type { PluginRuntime, SessionOutput } from "../../src/ports/plugin-runtime.js";
import { Dispatcher } from "../../src/services/dispatcher.js";
import { serve } from "../../src/http/pipeline.js";
import { Router } from "../../src/http/router.js";
import { backwardsInvocationRoutes } from "../../src/routes/backwards-invocation.js";
import { registeringSessions } from "../../src/services/session-registry.js";
import { PluginSessions, type PluginSession } from "../../src/stores/plugin-sessions.js";
import { LambdaSandbox } from "../support/lambda-runtime-api.js";
import { LAYER_BOOTSTRAP } from "../support/lambda-sandboxes.js";
import { FakeDifyInnerApi, llmChunks } from "../support/fake-dify-inner-api.js";
import { packFixture } from "../support/fixture-packages.js";
import { installPackage, readEvents, startTestDaemon, TEST_KEY, type TestDaemon } from "../support/local-daemon.js";

const T = "22222222-aaaa-bbbb-cccc-333333333333";
const PLUGIN = "fixtures/backwards-tool";
let d: TestDaemon;
let inner: FakeDifyInnerApi;
let uid: string;

const install = (pkg: Uint8Array) => installPackage(d, T, pkg);

beforeAll(async () => {
  inner = await new FakeDifyInnerApi().start();
  d = await startTestDaemon({
    DIFY_INNER_API_URL: inner.url,
    DIFY_INNER_API_KEY: inner.key,
    DIFY_BACKWARDS_INVOCATION_READ_TIMEOUT: "3000",
    PLUGIN_MAX_EXECUTION_TIMEOUT: "30",
  });
  uid = await install(await packFixture("backwards-tool"));
  // The same plugin under another name, without model access.
  const manifest = readFileSync(new URL("../fixtures/plugins/backwards-tool/manifest.yaml", import.meta.url), "utf8");
  const restricted = manifest.replace("name: backwards-tool", "name: no-llm-tool").replace(/ {4}model:\n {6}enabled: true\n {6}llm: true\n/, "");
  expect(restricted).not.toContain("llm: true");
  await install(await packFixture("backwards-tool", { files: { "manifest.yaml": restricted } }));
}, 600_000);
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
      json: { user_id: "u1", data: { provider: "backwards", tool, credentials: {}, credential_type: "api-key", tool_parameters: params } },
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

describe("storage kept by the daemon", () => {
  it("round-trips set, exist, get and delete", async () => {
    const events = await callTool("storage_roundtrip", { key: "greeting", value: "héllo" });
    expect(messages(events)).toEqual([{ text: "héllo" }, { json_object: { key: "greeting", existed: true, value: "héllo", exists_after_delete: false } }]);
    expect(await d.daemon.pluginStorage.usage(T, PLUGIN)).toBe(0);
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
    expect(await d.daemon.pluginStorage.exists(T, PLUGIN, "too-big")).toBe(false);
    expect(await d.daemon.pluginStorage.usage(T, PLUGIN)).toBe(0);
  });
});

describe("calls relayed to Dify's inner API", () => {
  it("streams an LLM answer (length-prefixed framing) with tenant, user and type added", async () => {
    const events = await callTool("call_llm", { prompt: "one two three", provider: "langgenius/openai/openai", model: "gpt-x" });
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

  it("answers single-result calls as one struct", async () => {
    const summary = await callTool("call_unary", { kind: "summary", text: "a long text to summarize" });
    expect(messages(summary)).toEqual([{ json_object: { summary: "a long tex" } }]);
    expect(inner.requestsTo("invoke/summary")[0]?.body).toMatchObject({ type: "system_summary", text: "a long text to summarize", tenant_id: T });
    const app = await callTool("call_unary", { kind: "fetch_app", text: "app-1" });
    expect(messages(app)).toEqual([{ json_object: { app: { app_id: "app-1", name: "app" } } }]);
  });

  it("refuses a call the manifest does not permit with upstream's message", async () => {
    const events = await callTool("call_llm", { prompt: "hi" }, "fixtures/no-llm-tool");
    expect(pluginError(events)).toContain("permission denied, you need to enable llm access in plugin manifest");
    expect(inner.requests).toHaveLength(0);
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
      expect(pluginError(events)).toMatch(/invoke llm model failed: Dify inner API is unreachable at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
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

describe("Lambda callbacks: POST /backwards-invocation/transaction", () => {
  async function session(accessType = "tool") {
    const sessionId = crypto.randomUUID();
    await d.daemon.pluginSessions.register({
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

  function transact(sessionId: string, token: string, type: string, request: Record<string, unknown>) {
    const event = { event: "session", session_id: sessionId, data: { type: "invoke", data: { type, backwards_request_id: "r1", request } } };
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
      .map((l) => JSON.parse(l) as { session_id: string; event: string; conversation_id: string | null; data: { backwards_request_id: string; event: string; message: string; data: any } });

  it("serves storage for a registered session and frames events as upstream", async () => {
    const { sessionId, token } = await session();
    const res = await transact(sessionId, token, "storage", { opt: "set", key: "cb", value: Buffer.from("via lambda").toString("hex") });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    const events = await lines(res);
    expect(events.map((e) => [e.event, e.data.event, e.data.message, e.data.data])).toEqual([
      ["backwards_response", "response", "struct", { data: "ok" }],
      ["backwards_response", "end", "", null],
    ]);
    expect(events[0]).toMatchObject({ session_id: sessionId, conversation_id: "c1", data: { backwards_request_id: "r1" } });
    const got = await lines(await transact(sessionId, token, "storage", { opt: "get", key: "cb" }));
    expect(Buffer.from(got[0]!.data.data.data, "hex").toString()).toBe("via lambda");
  });

  it("relays a streamed LLM answer event by event", async () => {
    const { sessionId, token } = await session();
    const events = await lines(await transact(sessionId, token, "llm", { provider: "p", model: "m", mode: "chat", prompt_messages: [{ role: "user", content: "x y" }] }));
    expect(events.map((e) => e.data.message)).toEqual(["stream", "stream", ""]);
    expect(events.slice(0, 2).map((e) => e.data.data.delta.message.content).join("")).toBe("x y");
    expect(inner.requestsTo("invoke/llm")[0]?.body).toMatchObject({ tenant_id: T, user_id: "u9", type: "llm" });
  });

  it("rejects a tampered callback token and does nothing", async () => {
    const { sessionId, token } = await session();
    const tampered = `${token.slice(0, -2)}${token.endsWith("AA") ? "BB" : "AA"}`;
    const res = await transact(sessionId, tampered, "storage", { opt: "set", key: "forged", value: "00" });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ backwards_request_id: "r1", event: "error", data: { error_type: "Unauthorized" } });
    const other = await session();
    expect((await transact(sessionId, other.token, "storage", { opt: "set", key: "forged", value: "00" })).status).toBe(401);
    expect((await transact(sessionId, "", "storage", { opt: "set", key: "forged", value: "00" })).status).toBe(401);
    expect(await d.daemon.pluginStorage.exists(T, PLUGIN, "forged")).toBe(false);
  });

  it("answers an unknown session like upstream (SessionNotFound)", async () => {
    const sessionId = crypto.randomUUID();
    const res = await transact(sessionId, sessionCallbackToken(sessionId, T, TEST_KEY), "storage", { opt: "exist", key: "k" });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ event: "error", message: "failed to get session info from cache", data: { error_type: "SessionNotFound", session_id: sessionId } });
  });

  it("sends blank-line heartbeats while Dify is slow to answer", async () => {
    const { sessionId, token } = await session();
    inner.on("invoke/llm", (body) => ({ chunks: llmChunks(body), delayMs: 350 }));
    const router = new Router(
      backwardsInvocationRoutes({ sessions: d.daemon.pluginSessions, backwards: d.daemon.backwards, callbackSecret: async () => TEST_KEY, heartbeatMs: 100 }),
    );
    const event = { event: "session", session_id: sessionId, data: { type: "invoke", data: { type: "llm", backwards_request_id: "r2", request: { prompt_messages: [{ content: "p q" }] } } } };
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
    const { sessionId, token } = await session("model");
    const events = await lines(await transact(sessionId, token, "storage", { opt: "exist", key: "k" }));
    expect(events.map((e) => [e.data.event, e.data.message])).toEqual([
      ["error", "you can not invoke dify from model"],
      ["end", ""],
    ]);
  });
});

describe("a plugin under the real Lambda bootstrap calling back over HTTP", () => {
  let sandbox: LambdaSandbox;

  beforeAll(async () => {
    // The installed plugin directory (with its venv) as the function's code.
    const taskRoot = pluginDirectory(join(d.dataDir, "plugins"), uid);
    sandbox = await LambdaSandbox.start({
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
      for await (const part of sandbox.api.invoke(payload, { timeoutMs: 60_000, functionArn: "arn:aws:lambda:us-east-1:000000000000:function:test" })) {
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
    new Dispatcher(registeringSessions(lambdaLike, new RecordingSessions(d.daemon.items)), 60, d.daemon.backwards.factory).stream({
      tenantId: T,
      uniqueIdentifier: uid,
      action: { type: "tool", action: "invoke_tool" },
      userId: "u-lambda",
      data: { provider: "backwards", tool, credentials: {}, credential_type: "api-key", tool_parameters: params },
    });
  const collect = async (chunks: AsyncIterable<string>) => {
    let text = "";
    for await (const c of chunks) text += c;
    return text.split("\n").filter((l) => l.startsWith("data: ")).map((l) => JSON.parse(l.slice(6)) as { code: number; message: string; data: unknown });
  };

  it("serves storage through /backwards-invocation/transaction", async () => {
    const events = await collect(run("storage_roundtrip", { key: "lambda-key", value: "from lambda" }));
    expect(messages(events), JSON.stringify(events) + sandbox.output.slice(-2000)).toEqual([
      { text: "from lambda" },
      { json_object: { key: "lambda-key", existed: true, value: "from lambda", exists_after_delete: false } },
    ]);
  }, 120_000);

  it("relays a streamed LLM answer to the plugin and forgets the session afterwards", async () => {
    const events = await collect(run("call_llm", { prompt: "over the bridge" }));
    expect(messages(events)).toEqual([{ text: "over the bridge" }]);
    const [call] = inner.requestsTo("invoke/llm");
    expect(call?.body).toMatchObject({ tenant_id: T, user_id: "u-lambda", type: "llm" });
    const session = registered.at(-1)!;
    expect(session).toMatchObject({ tenant_id: T, user_id: "u-lambda", plugin_unique_identifier: uid, access_type: "tool", access_action: "invoke_tool" });
    expect(await d.daemon.pluginSessions.get(session.session_id)).toBeUndefined();
  }, 120_000);
});
