/**
 * Installs whose package the daemon downloads itself: `source=marketplace` by unique identifier
 * and `source=github` from a release asset, against a fake marketplace/GitHub over real HTTP.
 * Downloads are size-capped (MAX_PLUGIN_PACKAGE_SIZE is 2 MiB here) and checked against the
 * identifier; a failed download fails the task and stores nothing.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FakeMarketplace } from "../support/fake-marketplace.js";
import { packFixture } from "../support/fixture-packages.js";
import { startTestDaemon, type TestDaemon, waitForTask } from "../support/local-daemon.js";

const M = "/plugin/55555555-2222-3333-4444-555555555555/management";
let d: TestDaemon;
let market: FakeMarketplace;

beforeAll(async () => {
  market = await FakeMarketplace.start();
  d = await startTestDaemon({
    MARKETPLACE_API_URL: market.url,
    GITHUB_API_URL: market.url,
    MAX_PLUGIN_PACKAGE_SIZE: String(2 * 1024 * 1024),
  });
});
afterAll(async () => {
  await d?.stop();
  await market?.close();
});

const json = async (res: Response) => (await res.json()) as { code: number; message: string; data: any };
/** Whether the daemon has the package (fetch/identifier says whether a tenant has it installed). */
const stored = async (uid: string) =>
  (await json(await d.call(`${M}/fetch/manifest?plugin_unique_identifier=${encodeURIComponent(uid)}`))).code === 0;

let tenants = 0;
/** Each install in its own tenant: a tenant that already has the plugin (any version) answers all_installed. */
async function install(uid: string, source: string, meta: Record<string, unknown> = {}) {
  const tenant = `tenant-${++tenants}`;
  const started = await json(
    await d.call(`/plugin/${tenant}/management/install/identifiers`, {
      method: "POST",
      json: { plugin_unique_identifiers: [uid], source, metas: [meta] },
    }),
  );
  expect(started.code, started.message).toBe(0);
  expect(started.data.all_installed).toBe(false);
  const task = await waitForTask(d, tenant, started.data.task_id);
  const list = await json(await d.call(`/plugin/${tenant}/management/list?page=1&page_size=256`));
  return { ...task, installed: list.data.list.map((i: any) => i.plugin_unique_identifier) as string[] };
}

describe("source=marketplace", () => {
  it("downloads a package that was never uploaded, then installs it", async () => {
    const uid = await market.publish(await packFixture("echo-tool", { version: "1.0.0" }));
    expect(await stored(uid)).toBe(false);
    const task = await install(uid, "marketplace");
    expect(task.status).toBe("success");
    expect(await stored(uid)).toBe(true);
    expect(task.installed).toEqual([uid]);
  });

  it("fails the task and stores nothing when the marketplace does not have the package", async () => {
    const uid = `fixtures/fake-llm:9.9.9@${"b".repeat(64)}`;
    const task = await install(uid, "marketplace");
    expect(task.status).toBe("failed");
    expect(task.plugins[0]?.message).toMatch(/HTTP 404/);
    expect(task.installed).toEqual([]);
    expect(await stored(uid)).toBe(false);
  });

  it("fails the task when the download is not a package", async () => {
    const uid = await market.publish(await packFixture("fake-llm", { version: "1.0.1" }));
    market.breakDownload(uid);
    const task = await install(uid, "marketplace");
    expect(task.status).toBe("failed");
    expect(task.plugins[0]?.message).toMatch(/difypkg/);
    expect(await stored(uid)).toBe(false);
  });

  it("refuses a download whose content does not match the identifier", async () => {
    const uid = `fixtures/fake-llm:1.0.2@${"c".repeat(64)}`;
    market.publishAs(uid, await packFixture("fake-llm", { version: "1.0.2" }));
    const task = await install(uid, "marketplace");
    expect(task.status).toBe("failed");
    expect(task.plugins[0]?.message).toMatch(/expected fixtures\/fake-llm:1\.0\.2@c{64}/);
    expect(await stored(uid)).toBe(false);
  });
});

describe("source=github", () => {
  it("downloads the release asset named in meta and installs it", async () => {
    const pkg = await packFixture("fake-llm", { version: "2.0.0" });
    const uid = await market.publish(pkg);
    market.publishGithubRelease("fixtures/fake-llm", "v2.0.0", "fake-llm.difypkg", pkg);
    const task = await install(uid, "github", {
      repo: "fixtures/fake-llm",
      version: "v2.0.0",
      package: "fake-llm.difypkg",
    });
    expect(task.status, JSON.stringify(task)).toBe("success");
    expect(task.installed).toEqual([uid]);
  });

  it("stops a download over the size limit", async () => {
    // Random bytes do not compress: the download itself is over the 2 MiB cap.
    const pkg = await packFixture("echo-tool", {
      version: "2.0.1",
      files: { "noise.bin": randomBytes(3 * 1024 * 1024) },
    });
    const uid = `fixtures/echo-tool:2.0.1@${"d".repeat(64)}`;
    market.publishGithubRelease("fixtures/echo-tool", "v2.0.1", "echo.difypkg", pkg);
    const task = await install(uid, "github", {
      repo: "fixtures/echo-tool",
      version: "v2.0.1",
      package: "echo.difypkg",
    });
    expect(task.status).toBe("failed");
    expect(task.plugins[0]?.message).toMatch(/exceeds the maximum limit/);
    expect(await stored(uid)).toBe(false);
  });

  it("needs repo, version and package in meta", async () => {
    const uid = `fixtures/echo-tool:2.0.2@${"e".repeat(64)}`;
    const task = await install(uid, "github", { repo: "fixtures/echo-tool" });
    expect(task.status).toBe("failed");
    expect(task.plugins[0]?.message).toMatch(/meta\.repo, meta\.version and meta\.package/);
  });
});
