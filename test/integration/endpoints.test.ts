/**
 * Plugin endpoints over real HTTP: management under /plugin/{tenant}/endpoint (settings encrypted
 * through a fake Dify inner API, masked in lists), and public calls /e/{hook_id}/... answered by
 * the real backwards-tool plugin as raw HTTP.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { createDaemon, localAdapters } from "../../src/daemon.js";
import { serve } from "../../src/http/pipeline.js";
import { routerFor } from "../../src/routes/groups.js";
import { FakeDifyInnerApi } from "../support/fake-dify-inner-api.js";
import { packFixture } from "../support/fixture-packages.js";
import { installPackage, startTestDaemon, TEST_KEY, type TestDaemon } from "../support/local-daemon.js";

const T = "11111111-aaaa-bbbb-cccc-222222222222";
const PLUGIN = "fixtures/backwards-tool";
let d: TestDaemon;
let inner: FakeDifyInnerApi;
let uid: string;
let noEndpointUid: string;

const install = (pkg: Uint8Array) => installPackage(d, T, pkg);

beforeAll(async () => {
  inner = await new FakeDifyInnerApi().start();
  d = await startTestDaemon({
    DIFY_INNER_API_URL: inner.url,
    DIFY_INNER_API_KEY: inner.key,
    PLUGIN_MAX_EXECUTION_TIMEOUT: "8",
  });
  uid = await install(await packFixture("backwards-tool"));
  // The same plugin under another name whose manifest does not ask for endpoint access.
  const manifest = (await import("node:fs")).readFileSync(
    new URL("../fixtures/plugins/backwards-tool/manifest.yaml", import.meta.url),
    "utf8",
  );
  noEndpointUid = await install(
    await packFixture("backwards-tool", {
      files: {
        "manifest.yaml": manifest
          .replace("name: backwards-tool", "name: no-endpoint-tool")
          .replace(/ {4}endpoint:\n {6}enabled: true\n/, ""),
      },
    }),
  );
}, 600_000);
afterAll(async () => {
  await d?.stop();
  await inner?.stop();
});
beforeEach(() => inner.reset());

const post = (path: string, json: unknown) =>
  d.call(`/plugin/${T}/endpoint/${path}`, { method: "POST", json }).then((r) => r.json() as Promise<any>);
const get = (path: string) => d.call(`/plugin/${T}/endpoint/${path}`).then((r) => r.json() as Promise<any>);
const errorOf = (body: { message: string }) => JSON.parse(body.message) as { message: string; error_type: string };

async function setup(settings: Record<string, unknown>, name = "hook") {
  const before = new Set(((await get("list?page=1&page_size=100")).data as any[]).map((e) => e.id));
  const res = await post("setup", { plugin_unique_identifier: uid, user_id: "u1", settings, name });
  expect(res, JSON.stringify(res)).toMatchObject({ code: 0, data: true });
  const created = ((await get("list?page=1&page_size=100")).data as any[]).find((e) => !before.has(e.id));
  return created as { id: string; hook_id: string; settings: Record<string, unknown>; enabled: boolean };
}

async function counters() {
  const list = (await (await d.call(`/plugin/${T}/management/list?page=1&page_size=50`)).json()) as any;
  const row = list.data.list.find((i: any) => i.plugin_id === PLUGIN);
  return { setups: row.endpoints_setups as number, active: row.endpoints_active as number };
}

const hook = (hookId: string, path: string, init: RequestInit = {}) => fetch(`${d.url}/e/${hookId}${path}`, init);

describe("endpoint management", () => {
  it("sets up an endpoint with settings encrypted by Dify and lists it with the secret masked", async () => {
    const before = await counters();
    const endpoint = await setup({ greeting: "hey", api_key: "sk-1234567890" }, "my hook");
    const encrypt = inner.requestsTo("invoke/encrypt").find((r) => r.body.opt === "encrypt");
    expect(encrypt?.headers["x-inner-api-key"]).toBe(inner.key);
    expect(encrypt?.body).toMatchObject({
      tenant_id: T,
      user_id: "u1",
      type: "encrypt",
      opt: "encrypt",
      namespace: "endpoint",
      identity: endpoint.id,
      data: { greeting: "hey", api_key: "sk-1234567890" },
    });
    expect((encrypt?.body.config as any[]).map((c) => c.name)).toEqual(["greeting", "api_key"]);
    expect(endpoint).toMatchObject({ enabled: true, settings: { greeting: "hey", api_key: "sk*********90" } });
    expect(endpoint.hook_id).toMatch(/^[a-z0-9]{16}$/);

    const listed = (await get(`list/plugin?plugin_id=${PLUGIN}&page=1&page_size=10`)).data as any[];
    const mine = listed.find((e) => e.id === endpoint.id);
    expect(mine).toMatchObject({
      name: "my hook",
      tenant_id: T,
      user_id: "u1",
      plugin_id: PLUGIN,
      expired_at: "2050-01-01T00:00:00Z",
    });
    expect(mine.declaration.settings.map((s: any) => s.name)).toEqual(["greeting", "api_key"]);
    expect(mine.declaration.endpoints.map((e: any) => e.path)).toEqual(["/hook", "/stream"]);
    expect(await counters()).toEqual({ setups: before.setups + 1, active: before.active + 1 });
  });

  it("validates settings against the declaration and checks the installation and its permission", async () => {
    const bad = await post("setup", {
      plugin_unique_identifier: uid,
      user_id: "u1",
      settings: { greeting: 5 },
      name: "x",
    });
    expect(bad.code).toBe(-400);
    expect(errorOf(bad).message).toBe("failed to validate settings: setting greeting is not a string");

    const other = uid.replace(/@[0-9a-f]+$/, `@${"a".repeat(64)}`);
    const missing = await post("setup", { plugin_unique_identifier: other, user_id: "u1", settings: {}, name: "x" });
    expect(missing.code).toBe(-404);
    expect(errorOf(missing)).toEqual({ message: "plugin not found", error_type: "PluginNotFoundError", args: null });

    const denied = await post("setup", {
      plugin_unique_identifier: noEndpointUid,
      user_id: "u1",
      settings: {},
      name: "x",
    });
    expect(denied.code).toBe(-403);
    expect(errorOf(denied).message).toBe("permission denied, you need to enable endpoint access in plugin manifest");
    expect(inner.requestsTo("invoke/encrypt")).toHaveLength(0);
  });

  it("keeps a secret the UI sends back masked and takes a new one", async () => {
    const endpoint = await setup({ greeting: "a", api_key: "secret-value-1" });
    const masked = endpoint.settings.api_key;
    inner.reset();
    expect(
      (
        await post("update", {
          endpoint_id: endpoint.id,
          user_id: "u1",
          name: "renamed",
          settings: { greeting: "b", api_key: masked },
        })
      ).data,
    ).toBe(true);
    let answer = (await (await hook(endpoint.hook_id, "/hook", { method: "POST", body: "x" })).json()) as any;
    expect(answer).toMatchObject({ greeting: "b", api_key: "secret-value-1" });
    expect(inner.requestsTo("invoke/encrypt").map((r) => r.body.opt)).toEqual([
      "decrypt",
      "encrypt",
      "clear",
      "decrypt",
    ]);

    await post("update", {
      endpoint_id: endpoint.id,
      user_id: "u1",
      name: "renamed",
      settings: { greeting: "b", api_key: "secret-value-2" },
    });
    answer = (await (await hook(endpoint.hook_id, "/hook", { method: "POST", body: "x" })).json()) as any;
    expect(answer.api_key).toBe("secret-value-2");
    const listed = ((await get("list?page=1&page_size=100")).data as any[]).find((e) => e.id === endpoint.id);
    expect(listed.name).toBe("renamed");

    const unknown = await post("update", { endpoint_id: "nope", user_id: "u1", name: "x", settings: {} });
    expect(unknown.code).toBe(-404);
  });

  it("disables and enables, keeping endpoints_active right", async () => {
    const endpoint = await setup({ greeting: "on" });
    const start = await counters();
    expect((await post("disable", { endpoint_id: endpoint.id })).data).toBe(true);
    expect((await post("disable", { endpoint_id: endpoint.id })).data).toBe(true);
    expect(await counters()).toEqual({ setups: start.setups, active: start.active - 1 });

    const res = await hook(endpoint.hook_id, "/hook", { method: "POST", body: "x" });
    expect(res.status).toBe(404);
    const body = (await res.json()) as any;
    expect(body.code).toBe(-404);
    expect(errorOf(body)).toMatchObject({ message: "endpoint not found", error_type: "PluginDaemonNotFoundError" });

    expect((await post("enable", { endpoint_id: endpoint.id })).data).toBe(true);
    expect(await counters()).toEqual(start);
    expect((await hook(endpoint.hook_id, "/hook", { method: "POST", body: "x" })).status).toBe(201);
    expect((await post("enable", { endpoint_id: "missing" })).code).toBe(-404);
  });

  it("removes an endpoint; removing it again answers Dify's 'record not found'", async () => {
    const endpoint = await setup({ greeting: "bye" });
    const start = await counters();
    expect((await post("remove", { endpoint_id: endpoint.id })).data).toBe(true);
    expect(await counters()).toEqual({ setups: start.setups - 1, active: start.active - 1 });
    const again = await post("remove", { endpoint_id: endpoint.id });
    expect(again.code).toBe(-500);
    expect(errorOf(again)).toMatchObject({ error_type: "PluginDaemonInternalServerError" });
    expect(errorOf(again).message).toContain("record not found");
    expect(await counters()).toEqual({ setups: start.setups - 1, active: start.active - 1 });
    expect((await hook(endpoint.hook_id, "/hook", { method: "POST", body: "x" })).status).toBe(404);
  });

  it("answers a bad page size like upstream's binding", async () => {
    const res = await d.call(`/plugin/${T}/endpoint/list?page=1&page_size=101`);
    expect(res.status).toBe(400);
  });
});

describe("public endpoint calls", () => {
  it("hands the plugin the raw request and streams its raw HTTP answer back", async () => {
    const endpoint = await setup({ greeting: "hi", api_key: "k-123456789" });
    const res = await hook(endpoint.hook_id, "/hook?b=2&a=1", {
      method: "POST",
      body: "the body",
      headers: { "X-Echo": "echoed", "X-Forwarded-For": "10.0.0.1", "content-type": "text/plain" },
    });
    expect(res.status).toBe(201);
    expect(res.headers.get("x-plugin")).toBe("backwards-tool");
    expect(res.headers.get("content-type")).toBe("application/json");
    const seen = (await res.json()) as any;
    expect(seen).toEqual({
      method: "POST",
      path: "/hook",
      query: { a: ["1"], b: ["2"] },
      body: "the body",
      header: "echoed",
      hook_id: endpoint.hook_id,
      hook_url: `http://${new URL(d.url).host}/e/${endpoint.hook_id}/hook`,
      forwarded_for: null,
      greeting: "hi",
      api_key: "k-123456789",
    });
    // The settings were decrypted through Dify for the call.
    expect(inner.requestsTo("invoke/encrypt").at(-1)?.body).toMatchObject({
      opt: "decrypt",
      identity: endpoint.id,
      user_id: "",
    });
  });

  it("passes body chunks through as the plugin produces them", async () => {
    const endpoint = await setup({});
    const started = Date.now();
    const res = await hook(endpoint.hook_id, "/stream?count=3&delay_ms=700");
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const arrivals: Array<{ at: number; text: string }> = [];
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      arrivals.push({ at: Date.now() - started, text: Buffer.from(value).toString() });
    }
    expect(arrivals.map((a) => a.text).join("")).toBe("line 0\nline 1\nline 2\n");
    expect(arrivals.length).toBeGreaterThan(1);
    expect(arrivals.at(-1)!.at - arrivals[0]!.at).toBeGreaterThan(1000);
  });

  it("appends upstream's 'killed by timeout' when the plugin outlives the execution timeout", async () => {
    const endpoint = await setup({});
    const res = await hook(endpoint.hook_id, "/stream?count=3&delay_ms=6000");
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text.startsWith("line 0\nline 1\n")).toBe(true);
    const tail = JSON.parse(text.slice(text.indexOf("{"))) as any;
    expect(tail.code).toBe(-500);
    expect(errorOf(tail).message).toBe("killed by timeout");
  }, 30_000);

  it("answers an unknown hook with upstream's 404", async () => {
    const res = await hook("doesnotexist0000", "/hook", { method: "POST", body: "x" });
    expect(res.status).toBe(404);
    const body = (await res.json()) as any;
    expect(body.code).toBe(-400);
    expect(errorOf(body)).toEqual({
      message: "endpoint not found",
      error_type: "PluginDaemonBadRequestError",
      args: null,
    });
  });

  it("refuses a body over 10 MB with 413 without calling the plugin", async () => {
    const endpoint = await setup({});
    inner.reset();
    const res = await hook(endpoint.hook_id, "/hook", { method: "POST", body: Buffer.alloc(10 * 1024 * 1024 + 1, 97) });
    expect(res.status).toBe(413);
    expect(errorOf((await res.json()) as any).message).toMatch(/request body too large/);
    expect(inner.requests).toHaveLength(0);
  });

  it("has no /e route when PLUGIN_ENDPOINT_ENABLED=false", async () => {
    const dir = mkdtempSync(join(tmpdir(), "endpoints-off-"));
    try {
      const config = loadConfig({ DATA_DIR: dir, SERVER_KEY: TEST_KEY, PLUGIN_ENDPOINT_ENABLED: "false" });
      const off = createDaemon(config, await localAdapters(config));
      const res = await serve(
        routerFor(off, "public-endpoint"),
        {
          method: "POST",
          path: "/e/abc/hook",
          params: {},
          query: new URLSearchParams(),
          headers: {},
          body: Buffer.alloc(0),
        },
        async () => TEST_KEY,
      );
      expect(res).toMatchObject({ kind: "json", status: 404, body: { code: "not_found", message: "route not found" } });
      await off.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
