/**
 * What an operator of the local daemon sees: Prometheus metrics at GET /metrics after real calls
 * to real plugins (invocations by outcome, errors by type, durations, first chunk, installs,
 * plugin starts and memory, backwards invocations, HTTP requests by route), and JSON log lines
 * that carry the request's fields and never the daemon key, Dify's inner-API key or a plugin's
 * credentials.
 */
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LocalPluginRuntime } from "../../src/adapters/local/local-plugin-runtime.js";
import type { PluginUniqueIdentifier } from "../../src/domain/identifier.js";
import { captureLogs } from "../../src/observability/logger.js";
import { FakeDifyInnerApi } from "../support/fake-dify-inner-api.js";
import { packFixture } from "../support/fixture-packages.js";
import { installPackage, readEvents, startTestDaemon, TEST_KEY, type TestDaemon } from "../support/local-daemon.js";

const T = "0b5e7a1c-3f00-4d00-8e00-0000000000a1";
const INNER_KEY = "inner-api-secret-3f9a7c1e5b";
const PLUGIN_SECRET = "sk-plugin-credential-7d41b0c9e2";

let d: TestDaemon;
let inner: FakeDifyInnerApi;
const logLines: string[] = [];
let restoreLogs: () => void;

beforeAll(async () => {
  const sink = new PassThrough();
  sink.on("data", (chunk: Buffer) => logLines.push(...chunk.toString("utf8").split("\n").filter(Boolean)));
  restoreLogs = captureLogs(sink, "debug");
  inner = await new FakeDifyInnerApi(INNER_KEY).start();
  d = await startTestDaemon({
    DIFY_INNER_API_URL: inner.url,
    DIFY_INNER_API_KEY: INNER_KEY,
    PLUGIN_MAX_EXECUTION_TIMEOUT: "20",
  });
  await installPackage(d, T, await packFixture("echo-tool"));
  await installPackage(d, T, await packFixture("misbehaving-tool"));
  await installPackage(d, T, await packFixture("backwards-tool"));
}, 900_000);
afterAll(async () => {
  restoreLogs?.();
  await d?.stop();
  await inner?.stop();
});

const dispatch = (pluginId: string, data: Record<string, unknown>) =>
  d.call(`/plugin/${T}/dispatch/tool/invoke`, {
    method: "POST",
    headers: { "x-plugin-id": pluginId },
    json: { user_id: "u1", data },
  });
const tool = (provider: string, name: string, params: Record<string, unknown>) => ({
  provider,
  tool: name,
  credentials: { api_key: PLUGIN_SECRET },
  credential_type: "api-key",
  tool_parameters: params,
});

async function scrape(): Promise<string> {
  const res = await fetch(`${d.url}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/plain");
  return res.text();
}

/** The value of one sample, matched by name and a subset of its labels. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.split(" ").at(-1));
  }
  return undefined;
}

describe("GET /metrics", () => {
  it("counts plugin calls by outcome and error type, with durations and time to first chunk", async () => {
    for (let i = 0; i < 3; i++) {
      const events = await readEvents(await dispatch("fixtures/echo-tool", tool("echo", "echo", { text: `hi ${i}` })));
      expect(events.every((e) => e.code === 0)).toBe(true);
    }
    const failed = await readEvents(await dispatch("fixtures/misbehaving-tool", tool("misbehaving", "raise", {})));
    expect(failed.at(-1)?.code).toBe(-500);

    const text = await scrape();
    const echo = { plugin_id: "fixtures/echo-tool", plugin_type: "tool", operation: "invoke_tool" };
    expect(sample(text, "plugin_invocations_total", { ...echo, status: "success", runtime_type: "local" })).toBe(3);
    expect(sample(text, "plugin_invocation_duration_seconds_count", echo)).toBe(3);
    expect(sample(text, "plugin_invocation_first_chunk_seconds_count", echo)).toBe(3);
    expect(sample(text, "plugin_invocations_active", { plugin_id: "fixtures/echo-tool" })).toBe(0);
    const raise = { plugin_id: "fixtures/misbehaving-tool", operation: "invoke_tool" };
    expect(sample(text, "plugin_invocations_total", { ...raise, status: "error" })).toBe(1);
    expect(sample(text, "plugin_invocation_errors_total", { ...raise, error_type: "ValueError" })).toBe(1);
  });

  it("reports installs, plugin starts and plugin memory from the supervisor", async () => {
    const text = await scrape();
    expect(sample(text, "plugin_installations_total", { plugin_id: "fixtures/echo-tool", status: "success" })).toBe(1);
    expect(sample(text, "plugin_installation_duration_seconds_count", { plugin_id: "fixtures/echo-tool" })).toBe(1);
    expect(sample(text, "plugin_starts_total", { plugin_id: "fixtures/echo-tool" })).toBeGreaterThanOrEqual(1);
    expect(sample(text, "plugin_memory_bytes", { plugin_id: "fixtures/echo-tool" })).toBeGreaterThan(1024 * 1024);
  });

  it("counts backwards invocations by type and outcome", async () => {
    const events = await readEvents(
      await dispatch("fixtures/backwards-tool", tool("backwards", "call_llm", { prompt: "one two" })),
    );
    expect(
      events.every((e) => e.code === 0),
      JSON.stringify(events.at(-1)),
    ).toBe(true);
    inner.on("invoke/llm", () => ({ document: { error: "down" }, status: 500 }));
    await readEvents(await dispatch("fixtures/backwards-tool", tool("backwards", "call_llm", { prompt: "again" })));
    inner.reset();
    const text = await scrape();
    expect(sample(text, "plugin_backwards_invocations_total", { type: "llm", status: "success" })).toBe(1);
    expect(sample(text, "plugin_backwards_invocations_total", { type: "llm", status: "error" })).toBe(1);
  });

  it("counts HTTP requests by route and status, a wrong key included, with upstream's names", async () => {
    const wrong = await fetch(`${d.url}/plugin/${T}/management/list?page=1&page_size=10`, {
      headers: { "x-api-key": "not-the-key" },
    });
    expect(wrong.status).toBe(401);
    await d.call(`/plugin/${T}/management/list?page=1&page_size=10`);
    const text = await scrape();
    const list = { method: "GET", endpoint: "/plugin/:tenant_id/management/list", route_group: "management" };
    expect(sample(text, "plugin_http_requests_total", { ...list, status: "200" })).toBeGreaterThanOrEqual(1);
    expect(sample(text, "plugin_http_requests_total", { ...list, status: "401" })).toBe(1);
    expect(
      sample(text, "plugin_http_request_duration_seconds_count", {
        method: "GET",
        endpoint: "/plugin/:tenant_id/management/list",
      }),
    ).toBeGreaterThanOrEqual(2);
    expect(
      sample(text, "plugin_http_requests_total", { endpoint: "/plugin/:tenant_id/dispatch/*action", status: "200" }),
    ).toBeGreaterThanOrEqual(4);
    // Node's process metrics sit beside them, as Go's do upstream.
    expect(text).toContain("process_resident_memory_bytes");
  });
});

describe("logs", () => {
  it("never contain the daemon key, the inner-API key or plugin credentials", async () => {
    // The key in a query string, credentials in bodies that succeed and fail, a backwards call
    // that sends the inner-API key to Dify, and an endpoint request that fails validation.
    await fetch(`${d.url}/health/check?key=${encodeURIComponent(TEST_KEY)}`);
    await fetch(`${d.url}/plugin/${T}/management/list?page=1&page_size=10&x=${TEST_KEY}`, {
      headers: { "x-api-key": TEST_KEY },
    });
    await readEvents(
      await dispatch("fixtures/misbehaving-tool", tool("misbehaving", "raise", { secret: PLUGIN_SECRET })),
    );
    await readEvents(await dispatch("fixtures/backwards-tool", tool("backwards", "call_llm", { prompt: INNER_KEY })));
    await d.call(`/plugin/${T}/dispatch/tool/invoke`, {
      method: "POST",
      headers: { "x-plugin-id": "fixtures/echo-tool" },
      json: { data: `not an object ${PLUGIN_SECRET}` },
    });
    await d.call(`/plugin/${T}/management/uninstall`, {
      method: "POST",
      json: { plugin_installation_id: "", api_key: PLUGIN_SECRET },
    });
    await new Promise((r) => setTimeout(r, 200));
    const all = logLines.join("\n");
    expect(logLines.length).toBeGreaterThan(10);
    expect(all).not.toContain(TEST_KEY);
    expect(all).not.toContain(INNER_KEY);
    expect(all).not.toContain(PLUGIN_SECRET);
    expect(all).toContain("[REDACTED]");
  });

  it("carry the request id, tenant, plugin, session and action on the lines of a plugin call", async () => {
    logLines.length = 0;
    await readEvents(await dispatch("fixtures/echo-tool", tool("echo", "echo", { text: "fields" })));
    await new Promise((r) => setTimeout(r, 100));
    const access = logLines
      .map((l) => JSON.parse(l))
      .find((l) => l.message === "HTTP request" && String(l.path).includes("/dispatch/"));
    expect(access).toMatchObject({
      level: "INFO",
      service: "dify-plugin-daemon",
      tenant_id: T,
      plugin_id: "fixtures/echo-tool",
      action: "tool/invoke_tool",
      status: 200,
    });
    expect(access.request_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(access.session_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(access.plugin_unique_identifier).toMatch(/^fixtures\/echo-tool:0\.0\.1@[0-9a-f]{64}$/);
    expect(typeof access.timestamp).toBe("string");
  });

  it("of a plugin's life after the call that started it (its crash, its restart) carry no request id", async () => {
    const runtime = d.daemon.runtime as LocalPluginRuntime;
    const uid = Object.keys(runtime.states()).find((u) =>
      u.startsWith("fixtures/echo-tool:"),
    ) as PluginUniqueIdentifier;
    logLines.length = 0;
    // A call (the one that started the process, when it was idle) ...
    await readEvents(await dispatch("fixtures/echo-tool", tool("echo", "echo", { text: "start it" })));
    const pid = runtime.pidOf(uid);
    expect(pid).toBeDefined();
    // ... and is long over when the process dies and the daemon restarts it.
    process.kill(pid as number, "SIGKILL");
    const lines = () => logLines.map((l) => JSON.parse(l));
    for (let i = 0; i < 100 && !lines().some((l) => l.message === "plugin process ended; restarting it"); i++)
      await new Promise((r) => setTimeout(r, 50));
    const call = lines().find((l) => l.message === "HTTP request" && String(l.path).includes("/dispatch/"));
    const restart = lines().find((l) => l.message === "plugin process ended; restarting it");
    expect(call?.request_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(restart).toMatchObject({ plugin: uid });
    expect(restart).not.toHaveProperty("request_id");
    expect(restart).not.toHaveProperty("session_id");
  });
});
