/**
 * Dispatch over real HTTP to real plugin processes running the real SDK: streaming results,
 * plugin errors in Dify's double-encoded shape, and failure isolation (crash, timeout, memory).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { packFixture } from "../support/fixture-packages.js";
import { installPackage, readEvents, startTestDaemon, type TestDaemon } from "../support/local-daemon.js";

const T = "99999999-2222-3333-4444-555555555555";
let d: TestDaemon;
const uids: Record<string, string> = {};

async function installFixture(name: string) {
  uids[name] = await installPackage(d, T, await packFixture(name));
}

beforeAll(async () => {
  // A 128 MiB floor lets the misbehaving fixture's declared 256 MiB be its limit.
  d = await startTestDaemon({ PLUGIN_MAX_EXECUTION_TIMEOUT: "4", PLUGIN_MEMORY_FLOOR_MB: "128" });
  await installFixture("echo-tool");
  await installFixture("fake-llm");
  await installFixture("misbehaving-tool");
}, 600_000);
afterAll(async () => {
  await d?.stop();
});

function dispatch(pluginId: string, path: string, data: Record<string, unknown>) {
  return d.call(`/plugin/${T}/dispatch/${path}`, {
    method: "POST",
    headers: { "x-plugin-id": pluginId },
    json: { user_id: "u1", data },
  });
}
const tool = (name: string, params: Record<string, unknown>) => ({
  provider: "misbehaving",
  tool: name,
  credentials: {},
  credential_type: "api-key",
  tool_parameters: params,
});
const echo = (params: Record<string, unknown>) => ({
  provider: "echo",
  tool: "echo",
  credentials: {},
  credential_type: "api-key",
  tool_parameters: params,
});
const innerError = (event: { message: string }) => {
  const outer = JSON.parse(event.message) as { error_type: string; message: string };
  return { outer: outer.error_type, inner: JSON.parse(outer.message) as { error_type: string; message: string } };
};
const llmData = (text: string) => ({
  provider: "fakellm",
  model_type: "llm",
  model: "fake-chat",
  credentials: { api_key: "k" },
  prompt_messages: [{ role: "user", content: text }],
  model_parameters: {},
  tools: [],
  stop: [],
  stream: true,
});

describe("streaming results", () => {
  it("streams an LLM answer chunk by chunk with usage at the end", async () => {
    const events = await readEvents(await dispatch("fixtures/fake-llm", "llm/invoke", llmData("one two three four")));
    expect(
      events.every((e) => e.code === 0),
      JSON.stringify(events.at(-1)),
    ).toBe(true);
    const chunks = events.map((e) => e.data as any);
    expect(chunks.map((c) => c.delta.message.content).join("")).toBe("one two three four");
    expect(chunks.length).toBe(5);
    expect(chunks.at(-1).delta.usage.completion_tokens).toBeGreaterThan(0);
  });

  it("streams many tool chunks in order", async () => {
    const events = await readEvents(
      await dispatch("fixtures/echo-tool", "tool/invoke", {
        provider: "echo",
        tool: "stream_chunks",
        credentials: {},
        tool_parameters: { count: 50 },
      }),
    );
    expect(events.map((e) => (e.data as any).message.text)).toEqual(Array.from({ length: 50 }, (_, i) => `chunk-${i}`));
  });

  it("passes blob chunks through intact", async () => {
    const events = await readEvents(
      await dispatch("fixtures/echo-tool", "tool/invoke", echo({ text: "0123456789", repeat: 3000 })),
    );
    const chunks = events.map((e) => e.data as any).filter((m) => m.type === "blob_chunk");
    expect(chunks.length).toBeGreaterThan(2);
    const bytes = Buffer.concat(chunks.map((c) => Buffer.from(c.message.blob, "base64")));
    expect(bytes.toString()).toBe("0123456789".repeat(3000));
    expect(chunks.at(-1).message.end).toBe(true);
  });

  it("answers credential validation with one result chunk", async () => {
    const events = await readEvents(
      await dispatch("fixtures/fake-llm", "model/validate_provider_credentials", {
        provider: "fakellm",
        credentials: { api_key: "good" },
      }),
    );
    expect(events).toHaveLength(1);
    expect((events[0]?.data as any).result).toBe(true);
  });

  it("serves many concurrent sessions of one plugin process", async () => {
    const results = await Promise.all(
      Array.from({ length: 16 }, (_, i) =>
        dispatch("fixtures/echo-tool", "tool/invoke", echo({ text: `n${i}` })).then(readEvents),
      ),
    );
    results.forEach((events, i) => expect((events[0]?.data as any).message.text).toBe(`n${i}`));
  });

  it("holds the response headers until the plugin's first output, then streams the rest as it comes", async () => {
    // Dify's first-token timeout is a read timeout on the response: headers sent early would defeat it.
    let started = Date.now();
    const slow = await dispatch("fixtures/misbehaving-tool", "tool/invoke", tool("sleep", { seconds: 1.5 }));
    expect(Date.now() - started).toBeGreaterThanOrEqual(1400);
    await readEvents(slow);

    started = Date.now();
    const res = await dispatch("fixtures/echo-tool", "tool/invoke", {
      provider: "echo",
      tool: "stream_chunks",
      credentials: {},
      tool_parameters: { count: 4, delay_ms: 500 },
    });
    const headersAfter = Date.now() - started;
    const events = await readEvents(res);
    expect(events).toHaveLength(4);
    expect(headersAfter).toBeLessThan(1000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1400);
  });

  it("invokes by unique identifier on the v2 route", async () => {
    const res = await d.call(`/v2/invoke/dispatch/tool/invoke`, {
      method: "POST",
      headers: { "x-plugin-unique-identifier": uids["echo-tool"]! },
      json: { tenant_id: T, user_id: "u1", data: echo({ text: "v2" }) },
    });
    expect(((await readEvents(res))[0]?.data as any).message.text).toBe("v2");
  });
});

describe("plugin errors in Dify's shape", () => {
  it("forwards a credential failure as PluginInvokeError wrapping CredentialsValidateFailedError", async () => {
    const events = await readEvents(
      await dispatch("fixtures/fake-llm", "model/validate_provider_credentials", {
        provider: "fakellm",
        credentials: { api_key: "bad" },
      }),
    );
    const last = events.at(-1)!;
    expect(last.code).toBe(-500);
    expect(innerError(last)).toMatchObject({
      outer: "PluginInvokeError",
      inner: { error_type: "CredentialsValidateFailedError" },
    });
  });

  it("forwards a rate limit as InvokeRateLimitError", async () => {
    const events = await readEvents(
      await dispatch("fixtures/fake-llm", "llm/invoke", llmData("please RATE_LIMIT now")),
    );
    expect(innerError(events.at(-1)!).inner.error_type).toBe("InvokeRateLimitError");
  });

  it("forwards an exception raised by a tool", async () => {
    const events = await readEvents(await dispatch("fixtures/misbehaving-tool", "tool/invoke", tool("raise", {})));
    const { inner } = innerError(events.at(-1)!);
    expect(inner.message).toContain("boom");
  });
});

describe("failure isolation", () => {
  it("ends a crashing plugin's session with an error and restarts the plugin", async () => {
    const events = await readEvents(await dispatch("fixtures/misbehaving-tool", "tool/invoke", tool("crash", {})));
    const last = events.at(-1)!;
    expect(last.code).toBe(-500);
    expect(innerError(last).inner).toMatchObject({ error_type: "PluginRuntimeError" });
    expect(innerError(last).inner.message).toContain("plugin process exited");
    const again = await readEvents(
      await dispatch("fixtures/misbehaving-tool", "tool/invoke", tool("sleep", { seconds: 0 })),
    );
    expect(again.at(-1)!.code).toBe(0);
  });

  it("kills a session that runs past the execution timeout while other plugins keep answering", async () => {
    const slow = dispatch("fixtures/misbehaving-tool", "tool/invoke", tool("sleep", { seconds: 30 })).then(readEvents);
    const fast = await readEvents(await dispatch("fixtures/echo-tool", "tool/invoke", echo({ text: "still here" })));
    expect((fast[0]?.data as any).message.text).toBe("still here");
    const events = await slow;
    const last = events.at(-1)!;
    expect(last.code).toBe(-500);
    expect(JSON.parse(last.message).message).toBe("killed by timeout");
  });

  it("stops a plugin that grows past its manifest's memory (above the configured floor) and reports it", async () => {
    const events = await readEvents(
      await dispatch("fixtures/misbehaving-tool", "tool/invoke", tool("allocate", { megabytes: 600 })),
    );
    const last = events.at(-1)!;
    expect(last.code).toBe(-500);
    expect(innerError(last).inner.message).toMatch(/memory limit/);
    const fine = await readEvents(await dispatch("fixtures/echo-tool", "tool/invoke", echo({ text: "ok" })));
    expect((fine[0]?.data as any).message.text).toBe("ok");
  });
});
