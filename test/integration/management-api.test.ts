/**
 * The plugin management API over real HTTP against the local daemon, with real fixture plugins
 * installed into real Python environments.
 */

import { readdirSync, readFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { packageChecksum } from "../../src/domain/checksum.js";
import { DEFAULT_PACKAGE_LIMITS, readPackage } from "../../src/domain/package-archive.js";
import { fixturesDir, packFixture } from "../support/fixture-packages.js";
import {
  readEvents,
  startTestDaemon,
  TEST_KEY,
  type TestDaemon,
  uploadForm,
  waitForTask,
} from "../support/local-daemon.js";
import { buildPackage } from "../support/package-builder.js";

/** fetch cannot send a body with GET; Dify's client does. */
function rawRequest(base: string, method: string, path: string, json: string): Promise<any> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${base}${path}`,
      {
        method,
        headers: {
          "x-api-key": TEST_KEY,
          "content-type": "application/json",
          "content-length": Buffer.byteLength(json),
        },
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on("data", (c: Buffer) => parts.push(c));
        res.on("end", () => resolve(JSON.parse(Buffer.concat(parts).toString("utf8")).data));
      },
    );
    req.on("error", reject);
    req.end(json);
  });
}

const T = "11111111-2222-3333-4444-555555555555";
const M = `/plugin/${T}/management`;
let d: TestDaemon;

beforeAll(async () => {
  d = await startTestDaemon();
});
afterAll(async () => {
  await d?.stop();
});

type Envelope<T = any> = { code: number; message: string; data: T };
const body = async <T = any>(res: Response) => (await res.json()) as Envelope<T>;
const errorOf = (env: Envelope) => JSON.parse(env.message) as { message: string; error_type: string };

async function upload(pkg: Uint8Array, verify = false) {
  return body(await d.call(`${M}/install/upload/package`, { method: "POST", body: uploadForm(pkg, verify) }));
}

async function install(uid: string) {
  const started = await body(
    await d.call(`${M}/install/identifiers`, {
      method: "POST",
      json: { plugin_unique_identifiers: [uid], source: "package", metas: [{}] },
    }),
  );
  expect(started.code).toBe(0);
  return started.data as { all_installed: boolean; task_id: string };
}

describe("auth, health and unknown routes", () => {
  it("answers the health check without a key and without an envelope", async () => {
    const res = await fetch(`${d.url}/health/check`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: "ok", platform: "local" });
  });

  it("rejects a missing or wrong X-Api-Key with upstream's 401 body", async () => {
    for (const key of [undefined, "wrong"]) {
      const res = await fetch(`${d.url}${M}/list?page=1&page_size=10`, { headers: key ? { "x-api-key": key } : {} });
      expect(res.status).toBe(401);
      const env = await body(res);
      expect(env.code).toBe(-401);
      expect(errorOf(env)).toEqual({
        message: "unauthorized",
        error_type: "PluginDaemonUnauthorizedError",
        args: null,
      });
    }
  });

  it("answers unknown routes with upstream's 404 shape", async () => {
    const res = await d.call("/no/such/route");
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ code: "not_found", message: "route not found" });
  });

  it("rejects invalid pagination with HTTP 400 and code -400", async () => {
    const res = await d.call(`${M}/list?page=0&page_size=10`);
    expect(res.status).toBe(400);
    expect((await body(res)).code).toBe(-400);
  });
});

describe("uploading packages", () => {
  it("decodes and stores a package, computing its identifier", async () => {
    const env = await upload(await packFixture("echo-tool"));
    expect(env.code).toBe(0);
    expect(env.data.unique_identifier).toMatch(/^fixtures\/echo-tool:0\.0\.1@[a-f0-9]{64}$/);
    expect(env.data.manifest).toMatchObject({ name: "echo-tool", author: "fixtures", verified: false });
    expect(env.data.manifest.tool.identity.name).toBe("echo");
    expect(env.data.verification).toBeNull();

    const uid = encodeURIComponent(env.data.unique_identifier);
    // Stored is not installed: upstream says true only once some tenant has the plugin installed.
    expect((await body(await d.call(`${M}/fetch/identifier?plugin_unique_identifier=${uid}`))).data).toBe(false);
    expect((await body(await d.call(`${M}/fetch/manifest?plugin_unique_identifier=${uid}`))).data.name).toBe(
      "echo-tool",
    );
    // Dify sends a JSON body on this GET; the query parameter works too.
    const viaBody = await rawRequest(
      d.url,
      "GET",
      `${M}/decode/from_identifier`,
      JSON.stringify({ plugin_unique_identifier: env.data.unique_identifier }),
    );
    expect(viaBody.unique_identifier).toBe(env.data.unique_identifier);
    expect(viaBody.verification).toBeNull();
    const viaQuery = await body(await d.call(`${M}/decode/from_identifier?plugin_unique_identifier=${uid}`));
    expect(viaQuery.data.unique_identifier).toBe(env.data.unique_identifier);
  });

  it("extracts a stored package's manifest by unique identifier on the v2 route", async () => {
    const env = await upload(await packFixture("echo-tool"));
    const res = await d.call("/v2/invoke/extract", {
      headers: { "x-plugin-unique-identifier": env.data.unique_identifier },
    });
    const extracted = await body(res);
    expect(extracted.data).toMatchObject({ unique_identifier: env.data.unique_identifier, verification: null });
    expect(extracted.data.manifest.name).toBe("echo-tool");
    expect((await d.call("/v2/invoke/extract")).status).toBe(400);
  });

  it("serves the remapped icon as an asset", async () => {
    const env = await upload(await packFixture("echo-tool"));
    const icon = env.data.manifest.icon as string;
    expect(icon).toMatch(/^[a-f0-9]{64}\.svg$/);
    const res = await d.call(`/plugin/${T}/asset/${icon}`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain("<svg");
  });

  const rejected: Array<[string, () => Promise<Uint8Array>, RegExp]> = [
    ["not a zip", async () => new TextEncoder().encode("hello, not a package"), /difypkg/i],
    ["a zip slip entry", async () => buildPackage({ "manifest.yaml": "x", "../evil.py": "x" }), /\.\./],
    ["a missing manifest", async () => buildPackage({ "main.py": "print(1)" }), /manifest\.yaml/],
    [
      "a malformed manifest",
      async () => packFixture("echo-tool", { files: { "manifest.yaml": "version: [unclosed" } }),
      /manifest\.yaml/,
    ],
    ["a bad version", async () => packFixture("echo-tool", { version: "not-a-version" }), /version/],
  ];
  for (const [what, make, message] of rejected) {
    it(`rejects ${what} with a clear error and stores nothing`, async () => {
      const before = (await body(await d.call(`${M}/list?page=1&page_size=256`))).data.total;
      const env = await upload(await make());
      expect(env.code).toBe(-400);
      expect(errorOf(env).error_type).toBe("PluginDaemonBadRequestError");
      expect(errorOf(env).message).toMatch(message);
      expect((await body(await d.call(`${M}/list?page=1&page_size=256`))).data.total).toBe(before);
    });
  }

  it("stops a zip bomb before inflating past the size limit", async () => {
    const bomb = await packFixture("echo-tool", {
      version: "0.0.8",
      files: { "zeros.bin": "\0".repeat(60 * 1024 * 1024) },
    });
    expect(bomb.byteLength).toBeLessThan(1024 * 1024);
    const env = await upload(bomb);
    expect(env.code).toBe(-400);
    expect(errorOf(env).message).toMatch(/too large/);
  });

  it("rejects an unsigned package when the request asks for verification", async () => {
    const env = await upload(await packFixture("echo-tool", { version: "0.0.9" }), true);
    expect(env.code).toBe(-400);
    expect(errorOf(env).message).toContain("bad signature");
  });
});

describe("uploading bundles", () => {
  const bundleManifest = (deps: string) =>
    `name: kit\nlabels: {en_US: Kit}\ndescription: {en_US: A kit}\nicon: icon.svg\nversion: 0.0.1\nauthor: fixtures\ntype: bundle\ndependencies:\n${deps}`;

  it("lists each dependency like upstream and stores the packages it carries", async () => {
    const pkg = await packFixture("fake-llm");
    const bundle = await buildPackage({
      "manifest.yaml": bundleManifest(
        "  - {type: github, value: {repo_pattern: 'acme/tools:1.2.0/tools.difypkg'}}\n" +
          "  - {type: marketplace, value: {marketplace_pattern: 'langgenius/openai:0.0.19'}}\n" +
          "  - {type: package, value: {path: fake-llm.difypkg}}\n",
      ),
      "_assets/fake-llm.difypkg": pkg,
    });
    const form = new FormData();
    form.set("dify_bundle", new Blob([bundle]), "kit.difybundle");
    const env = await body(await d.call(`${M}/install/upload/bundle`, { method: "POST", body: form }));
    expect(env.code).toBe(0);
    expect(env.data[0]).toEqual({
      type: "github",
      value: {
        repo_address: "https://github.com/acme/tools",
        repo: "acme/tools",
        release: "1.2.0",
        packages: "tools.difypkg",
      },
    });
    expect(env.data[1]).toEqual({
      type: "marketplace",
      value: { organization: "langgenius", plugin: "openai", version: "0.0.19" },
    });
    expect(env.data[2].type).toBe("package");
    const uid = env.data[2].value.unique_identifier as string;
    expect(uid).toMatch(/^fixtures\/fake-llm:0\.0\.1@/);
    expect(
      (await body(await d.call(`${M}/fetch/manifest?plugin_unique_identifier=${encodeURIComponent(uid)}`))).data.name,
    ).toBe("fake-llm");
  });

  it("stores none of a bundle's packages when one of them is bad", async () => {
    const good = await packFixture("fake-llm", { version: "0.0.5" });
    const bundle = await buildPackage({
      "manifest.yaml": bundleManifest(
        "  - {type: package, value: {path: good.difypkg}}\n  - {type: package, value: {path: bad.difypkg}}\n",
      ),
      "_assets/good.difypkg": good,
      "_assets/bad.difypkg": "not a zip",
    });
    const form = new FormData();
    form.set("dify_bundle", new Blob([bundle]), "kit.difybundle");
    const env = await body(await d.call(`${M}/install/upload/bundle`, { method: "POST", body: form }));
    expect(env.code).toBe(-400);
    const checksum = packageChecksum((await readPackage(good, DEFAULT_PACKAGE_LIMITS)).entries);
    const goodUid = encodeURIComponent(`fixtures/fake-llm:0.0.5@${checksum}`);
    expect((await body(await d.call(`${M}/fetch/manifest?plugin_unique_identifier=${goodUid}`))).code).toBe(-400);
  });
});

describe("installing, listing, dispatching, upgrading and uninstalling", () => {
  let uid: string;

  beforeAll(async () => {
    uid = (await upload(await packFixture("echo-tool"))).data.unique_identifier;
  });

  it("installs through a task that reaches success, then lists the plugin and its tool provider", async () => {
    const started = await install(uid);
    expect(started.all_installed).toBe(false);
    const task = await waitForTask(d, T, started.task_id);
    expect(task.status).toBe("success");
    expect(task.plugins[0]).toMatchObject({ status: "success", message: "installed" });

    const list = await body(await d.call(`${M}/list?page=1&page_size=256`));
    expect(list.data.total).toBe(1);
    expect(list.data.list[0]).toMatchObject({
      plugin_id: "fixtures/echo-tool",
      plugin_unique_identifier: uid,
      runtime_type: "local",
      version: "0.0.1",
    });
    const tools = await body(await d.call(`${M}/tools?page=1&page_size=256`));
    expect(tools.data).toHaveLength(1);
    expect(tools.data[0]).toMatchObject({ provider: "echo", plugin_id: "fixtures/echo-tool" });
    const tool = await body(await d.call(`${M}/tool?plugin_id=fixtures/echo-tool&provider=echo`));
    expect(tool.data.declaration.identity.name).toBe("echo");
    const exists = await body(
      await d.call(`${M}/tools/check_existence`, {
        method: "POST",
        json: {
          provider_ids: [
            { plugin_id: "fixtures/echo-tool", provider_name: "echo" },
            { plugin_id: "x/y", provider_name: "z" },
          ],
        },
      }),
    );
    expect(exists.data).toEqual([true, false]);
  });

  it("creates one installation when the same plugin is installed twice at once", async () => {
    const other = "33333333-2222-3333-4444-555555555555";
    const start = () =>
      d
        .call(`/plugin/${other}/management/install/identifiers`, {
          method: "POST",
          json: { plugin_unique_identifiers: [uid], source: "package" },
        })
        .then((r) => body(r));
    const [a, b] = await Promise.all([start(), start()]);
    for (const started of [a, b]) {
      if (started.data.task_id) expect((await waitForTask(d, other, started.data.task_id)).status).toBe("success");
    }
    const list = await body(await d.call(`/plugin/${other}/management/list?page=1&page_size=256`));
    expect(list.data.total).toBe(1);
  });

  it("answers the installation lookups Dify makes", async () => {
    const ids = await body(await d.call(`${M}/installation/ids?category=tool`));
    expect(ids.data).toEqual({ plugin_ids: ["fixtures/echo-tool"] });
    expect((await body(await d.call(`${M}/installation/ids?category=model`))).data).toEqual({ plugin_ids: [] });

    const batch = await body(
      await d.call(`${M}/installation/fetch/batch`, {
        method: "POST",
        json: { plugin_ids: ["fixtures/echo-tool", "fixtures/absent"] },
      }),
    );
    expect(batch.data).toHaveLength(1);
    expect(batch.data[0]).toMatchObject({
      plugin_id: "fixtures/echo-tool",
      plugin_unique_identifier: uid,
      version: "0.0.1",
    });
    expect(batch.data[0].declaration.name).toBe("echo-tool");

    const other = `fixtures/echo-tool:9.9.9@${"f".repeat(64)}`;
    const ghost = `fixtures/ghost:0.0.1@${"a".repeat(64)}`;
    const missing = await body(
      await d.call(`${M}/installation/missing`, {
        method: "POST",
        json: { plugin_unique_identifiers: [uid, other, ghost] },
      }),
    );
    expect(missing.data).toEqual([
      { plugin_unique_identifier: other, current_identifier: uid },
      { plugin_unique_identifier: ghost, current_identifier: "" },
    ]);
  });

  it("lists installed plugins by category with search and has_more", async () => {
    const tools = await body(await d.call(`${M}/tool/list?page=1&page_size=10&query=ECHO`));
    expect(tools.data.list.map((p: any) => p.plugin_id)).toEqual(["fixtures/echo-tool"]);
    expect(tools.data.has_more).toBe(false);
    expect((await body(await d.call(`${M}/tool/list?page=1&page_size=10&query=nothing-like-this`))).data.list).toEqual(
      [],
    );
    expect((await body(await d.call(`${M}/model/list?page=1&page_size=10`))).data.list).toEqual([]);
    for (const kind of ["models", "agent_strategies", "datasources", "triggers"]) {
      expect((await body(await d.call(`${M}/${kind}?page=1&page_size=256`))).data).toEqual([]);
    }
  });

  it("serves the README in the requested language, falling back to en_US", async () => {
    const pkg = await upload(
      await packFixture("echo-tool", {
        version: "0.0.6",
        files: { "README.md": "# Echo", "readme/README_ja_JP.md": "# エコー" },
      }),
    );
    const id = encodeURIComponent(pkg.data.unique_identifier);
    expect((await body(await d.call(`${M}/fetch/readme?plugin_unique_identifier=${id}&language=ja_JP`))).data).toEqual({
      content: "# エコー",
      language: "ja_JP",
    });
    expect((await body(await d.call(`${M}/fetch/readme?plugin_unique_identifier=${id}&language=pt_BR`))).data).toEqual({
      content: "# Echo",
      language: "en_US",
    });
  });

  it("answers a package without a README with upstream's -404", async () => {
    const pkg = await upload(await packFixture("echo-tool", { version: "0.0.7" }));
    const env = await body(
      await d.call(
        `${M}/fetch/readme?plugin_unique_identifier=${encodeURIComponent(pkg.data.unique_identifier)}&language=en_US`,
      ),
    );
    expect(env.code).toBe(-404);
    expect(errorOf(env)).toMatchObject({
      error_type: "PluginDaemonNotFoundError",
      message: "no readme content available for this plugin",
    });
  });

  it("deletes install tasks one plugin, one task, or all at a time", async () => {
    const tenant = "66666666-2222-3333-4444-555555555555";
    const tasks = `/plugin/${tenant}/management/install/tasks`;
    const startOne = async () =>
      (
        await body(
          await d.call(`/plugin/${tenant}/management/install/identifiers`, {
            method: "POST",
            json: {
              plugin_unique_identifiers: [
                `fixtures/ghost-${Math.random().toString(36).slice(2, 8)}:0.0.1@${"a".repeat(64)}`,
              ],
              source: "github",
              metas: [{}],
            },
          }),
        )
      ).data.task_id as string; // fails at once (no release named), without any download
    const first = await startOne();
    await waitForTask(d, tenant, first);
    const second = await startOne();
    await waitForTask(d, tenant, second);
    expect((await body(await d.call(`${tasks}?page=1&page_size=10`))).data.map((t: any) => t.id)).toEqual([
      second,
      first,
    ]);

    const task = (await body(await d.call(`${tasks}/${first}`))).data;
    const onlyPlugin = task.plugins[0].plugin_unique_identifier as string;
    expect((await body(await d.call(`${tasks}/${first}/delete/${onlyPlugin}`, { method: "POST" }))).data).toBe(true);
    expect((await body(await d.call(`${tasks}/${first}`))).code).toBe(-500);
    // a task that is already gone: upstream answers true, not an error
    expect(await body(await d.call(`${tasks}/${first}/delete/${onlyPlugin}`, { method: "POST" }))).toMatchObject({
      code: 0,
      data: true,
    });

    expect((await body(await d.call(`${tasks}/${second}/delete`, { method: "POST" }))).data).toBe(true);
    await waitForTask(d, tenant, await startOne());
    expect((await body(await d.call(`${tasks}/delete_all`, { method: "POST" }))).data).toBe(true);
    expect((await body(await d.call(`${tasks}?page=1&page_size=10`))).data).toEqual([]);
  });

  it("answers all_installed for an installed plugin, and never creates a second installation", async () => {
    const again = await install(uid);
    expect(again).toEqual({ all_installed: true, task_id: "" });
    const list = await body(await d.call(`${M}/list?page=1&page_size=256`));
    expect(list.data.total).toBe(1);
  });

  it("dispatches a tool invocation as an SSE stream of envelopes", async () => {
    const res = await d.call(`/plugin/${T}/dispatch/tool/invoke`, {
      method: "POST",
      headers: { "x-plugin-id": "fixtures/echo-tool" },
      json: {
        user_id: "u1",
        data: {
          provider: "echo",
          tool: "echo",
          credentials: {},
          credential_type: "api-key",
          tool_parameters: { text: "hello" },
        },
      },
    });
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const events = await readEvents(res);
    expect(events.every((e) => e.code === 0)).toBe(true);
    const messages = events.map((e) => e.data as { type: string; message: any });
    expect(messages[0]).toMatchObject({ type: "text", message: { text: "hello" } });
    expect(messages.some((m) => m.type === "json" && m.message.json_object?.echo === "hello")).toBe(true);
  });

  it("answers a dispatch for a plugin the tenant has not installed with 404 PluginNotFoundError", async () => {
    const res = await d.call(`/plugin/${T}/dispatch/tool/invoke`, {
      method: "POST",
      headers: { "x-plugin-id": "fixtures/not-installed" },
      json: { user_id: "u1", data: {} },
    });
    expect(res.status).toBe(404);
    expect(errorOf(await body(res)).error_type).toBe("PluginNotFoundError");
  });

  it("reports a missing task like upstream: -500 internal error wrapping the database's 'record not found'", async () => {
    const res = await d.call(`${M}/install/tasks/0190f0f0-0000-7000-8000-000000000000`);
    expect(res.status).toBe(200);
    const env = await body(res);
    expect(env.code).toBe(-500);
    expect(errorOf(env)).toMatchObject({ error_type: "PluginDaemonInternalServerError", message: "record not found" });
  });

  it("refuses to install a package that was never uploaded", async () => {
    const env = await body(
      await d.call(`${M}/install/identifiers`, {
        method: "POST",
        json: { plugin_unique_identifiers: [`fixtures/ghost:0.0.1@${"a".repeat(64)}`], source: "package" },
      }),
    );
    expect(env.code).toBe(-400);
    expect(errorOf(env).message).toContain("not found");
  });

  it("keeps the old version when an upgrade fails, and switches when it succeeds", async () => {
    const broken = await upload(
      await packFixture("echo-tool", {
        version: "0.0.3",
        files: { "requirements.txt": "dify_plugin==0.10.2\nno-such-package-for-tests-xyz==9.9.9\n" },
      }),
    );
    const failed = await body(
      await d.call(`${M}/install/upgrade`, {
        method: "POST",
        json: {
          original_plugin_unique_identifier: uid,
          new_plugin_unique_identifier: broken.data.unique_identifier,
          source: "package",
          meta: {},
        },
      }),
    );
    const failedTask = await waitForTask(d, T, failed.data.task_id);
    expect(failedTask.status).toBe("failed");
    expect(failedTask.plugins[0]?.message).toMatch(/no-such-package-for-tests-xyz/);
    // Nothing half-built stays behind: no plugin directory, no staging directory.
    const checksum = (broken.data.unique_identifier as string).split("@")[1];
    const leftovers = readdirSync(join(d.dataDir, "plugins", "fixtures")).filter((n) => n.includes(checksum!));
    expect(leftovers).toEqual([]);
    let list = await body(await d.call(`${M}/list?page=1&page_size=256`));
    expect(list.data.list[0].plugin_unique_identifier).toBe(uid);

    const next = await upload(await packFixture("echo-tool", { version: "0.0.2" }));
    const started = await body(
      await d.call(`${M}/install/upgrade`, {
        method: "POST",
        json: {
          original_plugin_unique_identifier: uid,
          new_plugin_unique_identifier: next.data.unique_identifier,
          source: "package",
          meta: {},
        },
      }),
    );
    const task = await waitForTask(d, T, started.data.task_id);
    expect(task.plugins[0]).toMatchObject({ status: "success", message: "upgraded" });
    list = await body(await d.call(`${M}/list?page=1&page_size=256`));
    expect(list.data.total).toBe(1);
    expect(list.data.list[0]).toMatchObject({
      plugin_unique_identifier: next.data.unique_identifier,
      version: "0.0.2",
    });
    uid = next.data.unique_identifier;
  });

  it("fails the install with a clear message when no Python fits the manifest's runner version", async () => {
    const manifest = readFileSync(join(fixturesDir, "echo-tool", "manifest.yaml"), "utf8").replace(
      'version: "3.12"',
      'version: "3.99"',
    );
    const pkg = await upload(
      await packFixture("echo-tool", {
        version: "0.0.7",
        files: { "manifest.yaml": manifest.replace(/^version: .*$/m, "version: 0.0.7") },
      }),
    );
    expect(pkg.code).toBe(0);
    const other = "44444444-2222-3333-4444-555555555555";
    const started = await body(
      await d.call(`/plugin/${other}/management/install/identifiers`, {
        method: "POST",
        json: { plugin_unique_identifiers: [pkg.data.unique_identifier], source: "package" },
      }),
    );
    const task = await waitForTask(d, other, started.data.task_id);
    expect(task.status).toBe("failed");
    expect(task.plugins[0]?.message).toMatch(/no Python interpreter >= 3\.99/);
    expect((await body(await d.call(`/plugin/${other}/management/list?page=1&page_size=10`))).data.total).toBe(0);
  });

  it("uninstalls idempotently", async () => {
    const list = await body(await d.call(`${M}/list?page=1&page_size=256`));
    const installationId = list.data.list[0].installation_id as string;
    for (let i = 0; i < 2; i++) {
      const env = await body(
        await d.call(`${M}/uninstall`, { method: "POST", json: { plugin_installation_id: installationId } }),
      );
      expect(env).toEqual({ code: 0, message: "success", data: true });
    }
    expect((await body(await d.call(`${M}/list?page=1&page_size=256`))).data.total).toBe(0);
  });
});
