/**
 * `migrate from-go` against a real PostgreSQL server (installed from Debian's package when the
 * machine has none, started in a throwaway directory): upstream's schema
 * (test/fixtures/go-daemon/schema.sql), rows and a plugin storage directory laid out as the Go
 * daemon leaves them. The real CLI migrates them into a fresh local data directory; then the
 * real local daemon on that directory must list the same plugins per tenant, answer tool and
 * model calls, serve the same endpoint hook ids with the settings Dify encrypted, and give the
 * plugins back their stored values. A second run changes nothing.
 */
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import Database from "better-sqlite3";
import { v7 as uuidv7 } from "uuid";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createDynamoDbClient, createS3Client } from "../../src/adapters/aws/clients.js";
import { DynamoDbItemStore } from "../../src/adapters/aws/dynamodb-item-store.js";
import { S3BlobStore } from "../../src/adapters/aws/s3-blob-store.js";
import { packageChecksum } from "../../src/domain/checksum.js";
import { type PluginUniqueIdentifier, uniqueIdentifier } from "../../src/domain/identifier.js";
import { DEFAULT_PACKAGE_LIMITS, readPackage } from "../../src/domain/package-archive.js";
import { Endpoints } from "../../src/stores/endpoints.js";
import { Installations } from "../../src/stores/installations.js";
import { PackageRecords } from "../../src/stores/package-records.js";
import { PluginStorage } from "../../src/stores/plugin-storage.js";
import { createTestBucket, createTestTable, uniqueResourceName } from "../support/aws-resources.js";
import { FakeDifyInnerApi } from "../support/fake-dify-inner-api.js";
import { fixturesDir, packFixture } from "../support/fixture-packages.js";
import { readEvents, startTestDaemon, type TestDaemon } from "../support/local-daemon.js";
import { POSTGRES_PASSWORD, POSTGRES_USER, startPostgres, type TestPostgres } from "../support/postgres.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const goFixtures = fileURLToPath(new URL("../fixtures/go-daemon", import.meta.url));
const schema = readFileSync(join(goFixtures, "schema.sql"), "utf8");

const A = "aaaaaaaa-1111-4111-8111-000000000001";
const B = "bbbbbbbb-2222-4222-8222-000000000002";
const DB = "dify_plugin";

let postgres: TestPostgres;
let inner: FakeDifyInnerApi;
let work: string;
let storageRoot: string;
let dataDir: string;
let daemon: TestDaemon | undefined;
const uid = {} as Record<"echo" | "store" | "llm" | "remote", PluginUniqueIdentifier>;
const id = {
  echoA: uuidv7(),
  storeA: uuidv7(),
  llmA: uuidv7(),
  remoteA: uuidv7(),
  echoB: uuidv7(),
  storeB: uuidv7(),
  hookA1: uuidv7(),
  hookA2: uuidv7(),
  hookB1: uuidv7(),
  hookRemote: uuidv7(),
};
const bigValue = randomBytes(100 * 1024);

/** The backwards-tool fixture plus a tool that only reads the plugin storage. */
async function storePackage(): Promise<Uint8Array> {
  const tool = (name: string) => readFileSync(join(goFixtures, "storage-read-tool/tools", name));
  const provider = readFileSync(join(fixturesDir, "backwards-tool/provider/backwards.yaml"), "utf8").replace(
    "tools:\n",
    "tools:\n  - tools/storage_read.yaml\n",
  );
  return packFixture("backwards-tool", {
    files: {
      "tools/storage_read.py": tool("storage_read.py"),
      "tools/storage_read.yaml": tool("storage_read.yaml"),
      "provider/backwards.yaml": provider,
    },
  });
}

/** `author/name:version@checksum`, the checksum computed by src/domain as upstream computes it. */
async function identifierOf(name: string, bytes: Uint8Array): Promise<PluginUniqueIdentifier> {
  return uniqueIdentifier(
    `fixtures/${name}:0.0.1@${packageChecksum((await readPackage(bytes, DEFAULT_PACKAGE_LIMITS)).entries)}`,
  );
}

function writeStorage(key: string, bytes: Uint8Array | string): void {
  const path = join(storageRoot, key);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, bytes);
}

const encrypted = (secret: string) => `encrypted:${Buffer.from(secret).toString("base64")}`;
const sql = (value: unknown) => (value === null ? "NULL" : `'${String(value).replaceAll("'", "''")}'`);
const insert = (table: string, row: Record<string, unknown>) =>
  `INSERT INTO "${table}" (${Object.keys(row)
    .map((c) => `"${c}"`)
    .join(", ")}) VALUES (${Object.values(row).map(sql).join(", ")});`;
const stamps = (minute: number) => ({
  created_at: `2025-06-01T10:${String(minute).padStart(2, "0")}:00.123Z`,
  updated_at: `2025-06-02T10:${String(minute).padStart(2, "0")}:00.456Z`,
});

/** Rows as the Go daemon writes them for the installs, endpoint setups and storage writes of two tenants. */
function goRows(): string {
  const installation = (
    rowId: string,
    tenant: string,
    identifier: string,
    minute: number,
    extra: Record<string, unknown>,
  ) =>
    insert("plugin_installations", {
      id: rowId,
      ...stamps(minute),
      tenant_id: tenant,
      plugin_id: identifier.split(":")[0],
      plugin_unique_identifier: identifier,
      runtime_type: "local",
      endpoints_setups: 0,
      endpoints_active: 0,
      source: "marketplace",
      meta: "{}",
      ...extra,
    });
  const provider = (table: string, tenant: string, identifier: string, name: string) =>
    insert(table, {
      id: uuidv7(),
      ...stamps(0),
      tenant_id: tenant,
      provider: name,
      plugin_unique_identifier: identifier,
      plugin_id: identifier.split(":")[0],
    });
  const endpoint = (
    rowId: string,
    tenant: string,
    hook: string,
    name: string,
    enabled: boolean,
    greeting: string,
    secret: string,
  ) =>
    insert("endpoints", {
      id: rowId,
      ...stamps(30),
      name,
      hook_id: hook,
      tenant_id: tenant,
      user_id: "user-1",
      plugin_id: uid.store.split(":")[0],
      expired_at: "2050-01-01T00:00:00Z",
      enabled,
      settings: JSON.stringify({ greeting, api_key: encrypted(secret) }),
    });
  const plugin = (identifier: string, refers: number, installType = "local") =>
    insert("plugins", {
      id: uuidv7(),
      ...stamps(0),
      plugin_unique_identifier: identifier,
      plugin_id: identifier.split(":")[0],
      refers,
      install_type: installType,
      manifest_type: "plugin",
      source: "marketplace",
    });
  const declaration = (identifier: string) =>
    insert("plugin_declarations", {
      id: uuidv7(),
      ...stamps(0),
      plugin_unique_identifier: identifier,
      plugin_id: identifier.split(":")[0],
      declaration: "{}",
    });
  const staleEcho = uid.echo.replace(/@[0-9a-f]+$/, `@${"e".repeat(64)}`).replace(":0.0.1@", ":0.0.0@");
  return [
    installation(id.echoA, A, uid.echo, 1, { meta: JSON.stringify({ installed_by: "u1", nested: { n: 1 } }) }),
    installation(id.storeA, A, uid.store, 2, { source: "package", endpoints_setups: 3, endpoints_active: 2 }),
    installation(id.llmA, A, uid.llm, 3, {
      source: "github",
      meta: JSON.stringify({ repo: "fixtures/fake-llm", version: "0.0.1", package: "fake-llm.difypkg" }),
    }),
    installation(id.remoteA, A, uid.remote, 4, { runtime_type: "remote", source: "remote" }),
    installation(id.echoB, B, uid.echo, 5, {}),
    installation(id.storeB, B, uid.store, 6, { endpoints_setups: 1, endpoints_active: 1 }),
    plugin(uid.echo, 2),
    plugin(uid.store, 2),
    plugin(uid.llm, 1),
    plugin(uid.remote, 1, "remote"),
    declaration(uid.echo),
    declaration(uid.store),
    declaration(uid.llm),
    declaration(`fixtures/uploaded-only:0.0.1@${"b".repeat(64)}`),
    provider("tool_installations", A, uid.echo, "echo"),
    provider("tool_installations", A, uid.store, "backwards"),
    provider("tool_installations", B, uid.echo, "echo"),
    provider("tool_installations", B, uid.store, "backwards"),
    provider("tool_installations", A, staleEcho, "echo"),
    provider("ai_model_installations", A, uid.llm, "fakellm"),
    endpoint(id.hookA1, A, "hookaaaaaaaaaaa1", "go hook", true, "hi from go", "sk-go-secret-a"),
    endpoint(id.hookA2, A, "hookaaaaaaaaaaa2", "disabled hook", false, "off", "sk-off"),
    endpoint(id.hookB1, B, "hookbbbbbbbbbbb1", "tenant b hook", true, "hi tenant b", "sk-go-secret-b"),
    insert("endpoints", {
      id: id.hookRemote,
      ...stamps(31),
      name: "remote",
      hook_id: "hookremote000001",
      tenant_id: A,
      user_id: "user-1",
      plugin_id: uid.remote.split(":")[0],
      expired_at: "2050-01-01T00:00:00Z",
      enabled: true,
      settings: "{}",
    }),
    insert("tenant_storages", {
      id: uuidv7(),
      ...stamps(0),
      tenant_id: A,
      plugin_id: "fixtures/backwards-tool",
      size: 36 + 12 + bigValue.length,
    }),
    insert("tenant_storages", {
      id: uuidv7(),
      ...stamps(0),
      tenant_id: B,
      plugin_id: "fixtures/backwards-tool",
      size: 14,
    }),
    insert("install_tasks", {
      id: uuidv7(),
      ...stamps(0),
      status: "success",
      tenant_id: A,
      total_plugins: 1,
      completed_plugins: 1,
      plugins: "[]",
    }),
    insert("plugin_readme_records", {
      id: uuidv7(),
      ...stamps(0),
      plugin_unique_identifier: uid.echo,
      language: "en_US",
      content: "# Echo",
    }),
  ].join("\n");
}

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [join(root, "src/cli/bin.mjs"), "migrate", "from-go", ...args],
      {
        cwd: tmpdir(),
        env: {
          ...process.env,
          PYTHON_INTERPRETER_PATH: inject("pythonPath"),
          UV_PATH: inject("uvPath"),
          LOG_LEVEL: "error",
        },
        maxBuffer: 32 * 1024 * 1024,
        timeout: 300_000,
      },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

const sourceArgs = (database = DB, storage = () => storageRoot) => [
  "--database-url",
  postgres.url(database),
  "--storage-root",
  storage(),
];
const migrate = async (...extra: string[]) => {
  const result = await cli([...sourceArgs(), "--target", "local", "--data-dir", dataDir, "--json", ...extra]);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as Report;
};

interface Report {
  dry_run: boolean;
  counts: Record<string, { migrated: number; present: number; skipped: number }>;
  skipped: Array<{ kind: string; item: string; reason: string }>;
  not_carried: Array<{ table: string; rows: number; reason: string }>;
  runtimes: Array<{
    plugin_unique_identifier: string;
    tenants: number;
    ready: boolean;
    prepared: boolean;
    error?: string;
  }>;
}

/** Every row of every table and every stored file with its hash: what "the source did not change" compares. */
async function sourceState(): Promise<string> {
  const tables = await postgres.query<{ table_name: string }>(
    DB,
    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
  );
  const rows: Record<string, unknown> = {};
  for (const { table_name } of tables)
    rows[table_name] = await postgres.query(DB, `SELECT * FROM "${table_name}" ORDER BY id`);
  const files = listFiles(storageRoot).map((f) => {
    const path = join(storageRoot, f);
    return `${f} ${createHash("sha256").update(readFileSync(path)).digest("hex")} ${statSync(path).mtimeMs}`;
  });
  return JSON.stringify({ rows, files });
}

function listFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

/** Every item of the local store, version included, and every blob: what "changes nothing" compares. */
function targetState(): string {
  const db = new Database(join(dataDir, "metadata.sqlite"), { readonly: true });
  try {
    const items = db.prepare("SELECT pk, sk, gsi1pk, gsi1sk, v, data FROM items ORDER BY pk, sk").all();
    return JSON.stringify({ items, blobs: listFiles(join(dataDir, "blobs")).filter((f) => !f.startsWith(".tmp")) });
  } finally {
    db.close();
  }
}

const startDaemon = async () =>
  (daemon ??= await startTestDaemon({
    DATA_DIR: dataDir,
    DIFY_INNER_API_URL: inner.url,
    DIFY_INNER_API_KEY: inner.key,
  }));
const api = async (path: string) =>
  (await (await (await startDaemon()).call(path)).json()) as { code: number; data: any; message: string };
const dispatch = async (tenant: string, pluginId: string, path: string, data: Record<string, unknown>) =>
  readEvents(
    await (await startDaemon()).call(`/plugin/${tenant}/dispatch/${path}`, {
      method: "POST",
      headers: { "x-plugin-id": pluginId },
      json: { user_id: "u1", data },
    }),
  );
const tool = (provider: string, name: string, params: Record<string, unknown>) => ({
  provider,
  tool: name,
  credentials: {},
  credential_type: "api-key",
  tool_parameters: params,
});

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "migrate-from-go-"));
  storageRoot = join(work, "go-storage");
  dataDir = join(work, "our-data");
  [postgres, inner] = await Promise.all([startPostgres(), new FakeDifyInnerApi().start()]);
  await postgres.createDatabase(DB);
  await postgres.exec(DB, schema);

  const [echo, store, llm] = await Promise.all([packFixture("echo-tool"), storePackage(), packFixture("fake-llm")]);
  uid.echo = await identifierOf("echo-tool", echo);
  uid.store = await identifierOf("backwards-tool", store);
  uid.llm = await identifierOf("fake-llm", llm);
  uid.remote = uniqueIdentifier(`${A}/debug-tool:0.0.1@${"d".repeat(32)}`);
  // Uploaded packages are in the package cache; fake-llm only in the installed bucket (both upstream layouts).
  writeStorage(`plugin_packages/${uid.echo}`, echo);
  writeStorage(`plugin_packages/${uid.store}`, store);
  writeStorage(`plugin/${uid.llm}`, llm);
  writeStorage(`persistence/${A}/fixtures/backwards-tool/greeting`, "hello from the Go daemon, tenant A!");
  writeStorage(`persistence/${A}/fixtures/backwards-tool/nested/deep`, "nested value");
  writeStorage(`persistence/${A}/fixtures/backwards-tool/big`, bigValue);
  writeStorage(`persistence/${B}/fixtures/backwards-tool/greeting`, "hello tenant B");
  writeStorage(`persistence/${A}/fixtures/unknown-plugin/key`, "no tenant_storages row");
  await postgres.exec(DB, goRows());
}, 900_000);

afterAll(async () => {
  await daemon?.stop();
  await inner?.stop();
  await postgres?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("migrate from-go", () => {
  let before: string;

  it("in a dry run checks every package and reports what it would do, writing nothing anywhere", async () => {
    before = await sourceState();
    const report = await migrate("--dry-run", "--prepare");
    expect(report.dry_run).toBe(true);
    expect(report.counts).toMatchObject({
      packages: { migrated: 3, present: 0, skipped: 0 },
      installations: { migrated: 5, present: 0, skipped: 1 },
      tool_installations: { migrated: 4, present: 0, skipped: 1 },
      ai_model_installations: { migrated: 1, present: 0, skipped: 0 },
      endpoints: { migrated: 3, present: 0, skipped: 1 },
      storage: { migrated: 4, present: 0, skipped: 1 },
    });
    expect(report.runtimes.map((r) => r.ready)).toEqual([false, false, false]);
    expect(existsSync(dataDir)).toBe(false);
    expect(await sourceState()).toBe(before);
  });

  it("migrates, prepares every runtime and reports skipped rows with their reasons", async () => {
    const report = await migrate("--prepare");
    expect(report.dry_run).toBe(false);
    expect(report.counts).toMatchObject({
      packages: { migrated: 3, present: 0, skipped: 0 },
      installations: { migrated: 5, present: 0, skipped: 1 },
      endpoints: { migrated: 3, present: 0, skipped: 1 },
      storage: { migrated: 4, present: 0, skipped: 1 },
    });
    expect(report.skipped.map((s) => [s.kind, s.item.split(" (")[0], s.reason])).toEqual([
      [
        "installations",
        `plugin_installations row ${id.remoteA}`,
        "remote debugging plugin: it registers again when its process connects to this daemon",
      ],
      [
        "tool_installations",
        expect.stringMatching(/^tool_installations row /),
        "no installation of this plugin version in this tenant (left over by an upgrade or uninstall)",
      ],
      [
        "endpoints",
        `endpoints row ${id.hookRemote}`,
        "belongs to a remote debugging plugin, which is not carried over",
      ],
      [
        "storage",
        `storage object persistence/${A}/fixtures/unknown-plugin/key`,
        "no tenant_storages row names its plugin",
      ],
    ]);
    expect(report.not_carried.map((n) => [n.table, n.rows])).toEqual([
      ["plugins", 4],
      ["plugin_declarations", 3],
      ["plugin_declarations (installed nowhere)", 1],
      ["install_tasks", 1],
      ["plugin_readme_records", 1],
    ]);
    expect(report.runtimes).toEqual(
      expect.arrayContaining([
        { plugin_unique_identifier: uid.echo, tenants: 2, ready: true, prepared: true },
        { plugin_unique_identifier: uid.store, tenants: 2, ready: true, prepared: true },
        { plugin_unique_identifier: uid.llm, tenants: 1, ready: true, prepared: true },
      ]),
    );
    expect(await sourceState()).toBe(before);
  }, 240_000);

  it("lists the same installations per tenant, with ids, sources, metas and endpoint counts", async () => {
    const rows = await postgres.query<Record<string, any>>(
      DB,
      "SELECT * FROM plugin_installations WHERE runtime_type <> 'remote'",
    );
    for (const tenant of [A, B]) {
      const listed = (await api(`/plugin/${tenant}/management/list?page=1&page_size=50`)).data.list as any[];
      const endpoints = await postgres.query<{ plugin_id: string; enabled: boolean }>(
        DB,
        "SELECT plugin_id, enabled FROM endpoints WHERE tenant_id = $1",
        [tenant],
      );
      const expected = rows
        .filter((r) => r.tenant_id === tenant)
        .map((r) => ({
          installation_id: r.id,
          plugin_id: r.plugin_id,
          plugin_unique_identifier: r.plugin_unique_identifier,
          source: r.source,
          meta: JSON.parse(r.meta),
          created_at: (r.created_at as Date).toISOString(),
          // Counted again from the endpoint rows (the Go rows' counters can drift).
          endpoints_setups: endpoints.filter((e) => e.plugin_id === r.plugin_id).length,
          endpoints_active: endpoints.filter((e) => e.plugin_id === r.plugin_id && e.enabled).length,
        }));
      const actual = listed.map((p) => ({
        installation_id: p.installation_id,
        plugin_id: p.plugin_id,
        plugin_unique_identifier: p.plugin_unique_identifier,
        source: p.source,
        meta: p.meta,
        created_at: p.created_at,
        endpoints_setups: p.endpoints_setups,
        endpoints_active: p.endpoints_active,
      }));
      const byId = (a: { installation_id: string }, b: { installation_id: string }) =>
        a.installation_id.localeCompare(b.installation_id);
      expect(actual.sort(byId)).toEqual(expected.sort(byId));
    }
    const toolsA = (await api(`/plugin/${A}/management/tools?page=1&page_size=50`)).data as any[];
    expect(toolsA.map((t) => [t.plugin_id, t.provider]).sort()).toEqual([
      ["fixtures/backwards-tool", "backwards"],
      ["fixtures/echo-tool", "echo"],
    ]);
    expect(toolsA.find((t) => t.provider === "backwards").declaration.tools.map((t: any) => t.identity.name)).toContain(
      "storage_read",
    );
    const modelsA = (await api(`/plugin/${A}/management/models?page=1&page_size=50`)).data as any[];
    expect(modelsA.map((m) => [m.plugin_id, m.provider])).toEqual([["fixtures/fake-llm", "fakellm"]]);
    expect((await api(`/plugin/${B}/management/models?page=1&page_size=50`)).data).toEqual([]);
  });

  it("answers tool and model calls in every tenant", async () => {
    for (const tenant of [A, B]) {
      const events = await dispatch(
        tenant,
        "fixtures/echo-tool",
        "tool/invoke",
        tool("echo", "echo", { text: `hi ${tenant}` }),
      );
      expect(
        events.every((e) => e.code === 0),
        JSON.stringify(events),
      ).toBe(true);
      expect(
        events
          .map((e) => (e.data as any).message?.text)
          .filter(Boolean)
          .join(""),
      ).toContain(`hi ${tenant}`);
    }
    const llm = await dispatch(A, "fixtures/fake-llm", "llm/invoke", {
      provider: "fakellm",
      model_type: "llm",
      model: "fake-chat",
      credentials: { api_key: "k" },
      prompt_messages: [{ role: "user", content: "carried over" }],
      model_parameters: {},
      tools: [],
      stop: [],
      stream: true,
    });
    expect(llm.map((e) => (e.data as any).delta.message.content).join("")).toBe("carried over");
  });

  it("serves the same hook ids with the settings Dify encrypted, enabled or not as before", async () => {
    const d = await startDaemon();
    const hook = async (hookId: string) => fetch(`${d.url}/e/${hookId}/hook`, { method: "POST", body: "x" });
    const a1 = await hook("hookaaaaaaaaaaa1");
    expect(a1.status).toBe(201);
    expect(await a1.json()).toMatchObject({
      hook_id: "hookaaaaaaaaaaa1",
      greeting: "hi from go",
      api_key: "sk-go-secret-a",
    });
    const b1 = await hook("hookbbbbbbbbbbb1");
    expect(await b1.json()).toMatchObject({ greeting: "hi tenant b", api_key: "sk-go-secret-b" });
    expect((await hook("hookaaaaaaaaaaa2")).status).toBe(404);
    expect((await hook("hookremote000001")).status).toBe(404);

    const listed = (await api(`/plugin/${A}/endpoint/list?page=1&page_size=50`)).data as any[];
    expect(listed.map((e) => [e.id, e.hook_id, e.name, e.enabled, e.settings.api_key]).sort()).toEqual(
      [
        [id.hookA1, "hookaaaaaaaaaaa1", "go hook", true, "sk**********-a"],
        [id.hookA2, "hookaaaaaaaaaaa2", "disabled hook", false, "******"],
      ].sort(),
    );
  });

  it("gives each plugin back the values it stored, per tenant", async () => {
    const read = async (tenant: string, key: string) => {
      const events = await dispatch(
        tenant,
        "fixtures/backwards-tool",
        "tool/invoke",
        tool("backwards", "storage_read", { key }),
      );
      expect(
        events.every((e) => e.code === 0),
        JSON.stringify(events),
      ).toBe(true);
      return (events.find((e) => (e.data as any).type === "json")?.data as any).message.json_object;
    };
    expect(await read(A, "greeting")).toMatchObject({ exists: true, text: "hello from the Go daemon, tenant A!" });
    expect(await read(A, "nested/deep")).toMatchObject({ exists: true, text: "nested value" });
    expect(await read(A, "big")).toMatchObject({
      exists: true,
      size: bigValue.length,
      sha256: createHash("sha256").update(bigValue).digest("hex"),
    });
    expect(await read(B, "greeting")).toMatchObject({ exists: true, text: "hello tenant B" });
    expect(await read(B, "big")).toEqual({ key: "big", exists: false });
  });

  it("changes nothing when run again", async () => {
    const stored = targetState();
    const report = await migrate("--prepare");
    for (const [kind, counts] of Object.entries(report.counts)) expect(counts.migrated, kind).toBe(0);
    expect(report.counts).toMatchObject({
      packages: { present: 3 },
      installations: { present: 5 },
      endpoints: { present: 3 },
      storage: { present: 4 },
      tool_installations: { present: 4 },
    });
    expect(report.runtimes.every((r) => r.ready && !r.prepared)).toBe(true);
    expect(targetState()).toBe(stored);
    expect(await sourceState()).toBe(before);
  }, 120_000);

  it("stops before writing anything when a package file is not the package its row names", async () => {
    const broken = "dify_plugin_broken";
    await postgres.createDatabase(broken);
    await postgres.exec(broken, schema);
    const rowId = uuidv7();
    await postgres.exec(
      broken,
      insert("plugin_installations", {
        id: rowId,
        ...stamps(1),
        tenant_id: A,
        plugin_id: "fixtures/echo-tool",
        plugin_unique_identifier: uid.echo,
        runtime_type: "local",
        endpoints_setups: 0,
        endpoints_active: 0,
        source: "marketplace",
        meta: "{}",
      }),
    );
    const otherStorage = join(work, "tampered-storage");
    mkdirSync(join(otherStorage, "plugin_packages/fixtures"), { recursive: true });
    writeFileSync(
      join(otherStorage, `plugin_packages/${uid.echo}`),
      await packFixture("echo-tool", { files: { "extra.txt": "changed" } }),
    );
    const fresh = join(work, "fresh-data");
    const result = await cli([...sourceArgs(broken, () => otherStorage), "--target", "local", "--data-dir", fresh]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      `error: plugin_installations row ${rowId} (tenant ${A}, ${uid.echo}): package plugin_packages/${uid.echo} cannot be carried over`,
    );
    expect(result.stderr).toContain("the checksum does not match the identifier");
    expect(listFiles(join(fresh, "blobs"))).toEqual([]);
  });

  it("names the row whose JSON it cannot read", async () => {
    const bad = "dify_plugin_bad_json";
    await postgres.createDatabase(bad);
    await postgres.exec(bad, schema);
    const rowId = uuidv7();
    await postgres.exec(
      bad,
      insert("endpoints", {
        id: rowId,
        ...stamps(1),
        name: "x",
        hook_id: "hookbadjson00001",
        tenant_id: A,
        user_id: "u",
        plugin_id: "fixtures/x",
        expired_at: "2050-01-01T00:00:00Z",
        enabled: true,
        settings: "{not json",
      }),
    );
    const result = await cli([
      ...sourceArgs(bad),
      "--target",
      "local",
      "--data-dir",
      join(work, "unused"),
      "--dry-run",
      "--json",
    ]);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toEqual({ error: `endpoints row ${rowId}: settings: not a JSON object` });
  });
});

describe("migrate from-go with an older Go daemon's database", () => {
  it("keeps the newer of two installations of one plugin in a tenant (before upstream's unique index) and says so", async () => {
    const old = "dify_plugin_old";
    await postgres.createDatabase(old);
    await postgres.exec(old, `${schema}\nDROP INDEX "idx_tenant_plugin";`);
    const [older, newer] = [uuidv7(), uuidv7()];
    const row = (rowId: string, minute: number) =>
      insert("plugin_installations", {
        id: rowId,
        ...stamps(minute),
        tenant_id: A,
        plugin_id: "fixtures/echo-tool",
        plugin_unique_identifier: uid.echo,
        runtime_type: "local",
        endpoints_setups: 0,
        endpoints_active: 0,
        source: "marketplace",
        meta: "{}",
      });
    await postgres.exec(old, [row(older, 1), row(newer, 2)].join("\n"));
    const result = await cli([
      ...sourceArgs(old),
      "--target",
      "local",
      "--data-dir",
      join(work, "old-data"),
      "--dry-run",
    ]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain("Dry run: nothing was written.");
    expect(result.stdout).toMatch(/installations\s+1\s+0\s+1\n/);
    expect(result.stdout).toContain(
      `plugin_installations row ${older} (tenant ${A}, ${uid.echo}): duplicate installation of fixtures/echo-tool in this tenant; kept the newer row ${newer}`,
    );
    expect(result.stderr).toContain(`[checking packages 1/1] ${uid.echo}: checked (plugin_packages/${uid.echo})`);
  });
});

describe("migrate from-go on AWS", () => {
  it("reads the Go daemon's S3 storage with its own settings and writes the stack's table and bucket", async () => {
    const endpoint = process.env.AWS_ENDPOINT_URL!;
    const goBucket = uniqueResourceName("go-storage");
    const table = uniqueResourceName("migrated");
    const bucket = uniqueResourceName("migrated");
    const s3 = createS3Client();
    await Promise.all([
      createTestBucket(s3, goBucket),
      createTestBucket(s3, bucket),
      createTestTable(createDynamoDbClient(), table),
    ]);
    for (const key of listFiles(storageRoot)) {
      await s3.send(new PutObjectCommand({ Bucket: goBucket, Key: key, Body: readFileSync(join(storageRoot, key)) }));
    }
    // The Go daemon's own .env, as its operator has it.
    const goEnv = join(work, "go-daemon.env");
    writeFileSync(
      goEnv,
      [
        "# the Go daemon's settings",
        "DB_TYPE=postgresql",
        "DB_HOST=127.0.0.1",
        `DB_PORT=${postgres.port}`,
        `DB_USERNAME=${POSTGRES_USER}`,
        `DB_PASSWORD="${POSTGRES_PASSWORD}"`,
        `DB_DATABASE=${DB}`,
        "PLUGIN_STORAGE_TYPE=aws_s3",
        `PLUGIN_STORAGE_OSS_BUCKET=${goBucket}`,
        `S3_ENDPOINT=${endpoint}`,
        "S3_USE_PATH_STYLE=true",
        "AWS_ACCESS_KEY=test",
        "AWS_SECRET_KEY=test",
        "AWS_REGION=us-east-1",
      ].join("\n"),
    );
    const run = () => cli(["--go-env", goEnv, "--target", "aws", "--table", table, "--bucket", bucket, "--json"]);

    const first = await run();
    expect(first.code, first.stderr).toBe(0);
    const report = JSON.parse(first.stdout) as Report;
    expect(report.counts).toMatchObject({
      packages: { migrated: 3 },
      installations: { migrated: 5 },
      endpoints: { migrated: 3 },
      storage: { migrated: 4 },
    });
    // Lambda functions are built by --prepare (or the first install); until then the report says so.
    expect(report.runtimes.every((r) => !r.ready)).toBe(true);

    const items = new DynamoDbItemStore({ tableName: table });
    const installations = await new Installations(items).list(A);
    expect(installations.map((i) => [i.id, i.runtime_type]).sort()).toEqual(
      [
        [id.echoA, "serverless"],
        [id.llmA, "serverless"],
        [id.storeA, "serverless"],
      ].sort(),
    );
    expect((await new PackageRecords(items, new S3BlobStore({ bucket })).bytes(uid.store))?.byteLength).toBeGreaterThan(
      0,
    );
    expect(await new Endpoints(items).findByHook("hookbbbbbbbbbbb1")).toMatchObject({
      id: id.hookB1,
      tenant_id: B,
      settings: { greeting: "hi tenant b" },
    });
    const storage = new PluginStorage(items, new S3BlobStore({ bucket }));
    expect(Buffer.compare((await storage.get(A, "fixtures/backwards-tool", "big"))!, bigValue)).toBe(0);
    expect((await storage.get(A, "fixtures/backwards-tool", "nested/deep"))?.toString()).toBe("nested value");

    const second = await run();
    expect(second.code, second.stderr).toBe(0);
    const again = JSON.parse(second.stdout) as Report;
    expect(Object.values(again.counts).every((c) => c.migrated === 0)).toBe(true);
    expect(again.counts).toMatchObject({
      packages: { present: 3 },
      installations: { present: 5 },
      endpoints: { present: 3 },
      storage: { present: 4 },
    });
  }, 120_000);
});
