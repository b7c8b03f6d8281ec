/**
 * Differential wire test: every request in test/support/upstream-answers.ts goes to the local
 * daemon over real HTTP, and the answer must be what the upstream Go daemon answers (status,
 * envelope code, error type and text, data shape). The fixture is a real Python model plugin
 * that implements Dify's polling calls through the SDK; two versions run, for two tenants.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import packageJson from "../../package.json" with { type: "json" };
import { packFixture } from "../support/fixture-packages.js";
import { installPackage, startTestDaemon, type TestDaemon, uploadForm } from "../support/local-daemon.js";
import {
  UPSTREAM_COMMIT,
  type UpstreamAnswer,
  type WireContext,
  type WireRequest,
  wireCases,
} from "../support/upstream-answers.js";

const TENANT = "7a7a7a7a-2222-3333-4444-555555555555";
const OTHER_TENANT = "7b7b7b7b-2222-3333-4444-555555555555";

let d: TestDaemon;
let ctx: WireContext;

async function upload(pkg: Uint8Array) {
  const res = await d.call(`/plugin/${TENANT}/management/install/upload/package`, {
    method: "POST",
    body: uploadForm(pkg),
  });
  return ((await res.json()) as { data: { unique_identifier: string; manifest: { icon: string } } }).data;
}

beforeAll(async () => {
  d = await startTestDaemon();
  const [v1, v2, v3] = await Promise.all(
    ["0.0.1", "0.0.2", "0.0.3"].map((version) => packFixture("polling-llm", { version })),
  );
  // Two versions, each running for one tenant, install side by side.
  const [installed, installedElsewhere] = await Promise.all([
    installPackage(d, TENANT, v1!),
    installPackage(d, OTHER_TENANT, v2!),
  ]);
  const stored = await upload(v3!);
  ctx = {
    tenant: TENANT,
    otherTenant: OTHER_TENANT,
    installed,
    installedElsewhere,
    storedOnly: stored.unique_identifier,
    unknown: `fixtures/ghost:0.0.1@${"a".repeat(64)}`,
    iconAsset: stored.manifest.icon,
    packageBytes: v3!,
    version: packageJson.version,
  };
}, 300_000);

afterAll(async () => {
  await d?.stop();
});

async function send(req: WireRequest): Promise<Response> {
  const headers = new Headers(req.headers);
  if (req.noKey) headers.set("x-api-key", "");
  let body: FormData | string | undefined = req.form;
  if (req.json !== undefined) {
    headers.set("content-type", "application/json");
    body = JSON.stringify(req.json);
  } else if (req.body) {
    headers.set("content-type", req.body.contentType);
    body = req.body.text;
  }
  return d.call(req.path, { method: req.method, headers, body });
}

type Envelope = { code: number; message: string; data: unknown };

function expectEnvelope(env: Envelope, want: UpstreamAnswer) {
  if (want.code !== undefined) expect(env.code, "envelope code").toBe(want.code);
  if (want.errorType !== undefined || want.message !== undefined) {
    expect(env.data, "error envelopes carry data: null").toBeNull();
    const inner = JSON.parse(env.message) as { message: string; error_type: string };
    if (want.errorType !== undefined) expect(inner.error_type, "error type").toBe(want.errorType);
    if (typeof want.message === "string") expect(inner.message, "error text").toBe(want.message);
    else if (want.message instanceof RegExp) expect(inner.message, "error text").toMatch(want.message);
    else if (want.message !== undefined) expect(inner.message, "error text").toEqual(want.message);
  } else if (want.code === 0) {
    expect(env.message).toBe("success");
  }
  if (want.data !== undefined) expect(env.data, "envelope data").toEqual(want.data);
}

describe(`wire parity with the upstream daemon (langgenius/dify-plugin-daemon@${UPSTREAM_COMMIT.slice(0, 7)})`, () => {
  for (const wireCase of wireCases) {
    it(`${wireCase.name} — ${wireCase.source}`, async () => {
      const want = wireCase.upstream(ctx);
      const res = await send(wireCase.request(ctx));
      expect(res.status, "HTTP status").toBe(want.status);
      const contentType = res.headers.get("content-type") ?? "";
      switch (want.kind) {
        case "envelope":
          expect(contentType, "a plain JSON answer").toContain("application/json");
          expectEnvelope((await res.json()) as Envelope, want);
          break;
        case "json":
          expect(contentType).toContain("application/json");
          expect(await res.json()).toEqual(want.data);
          break;
        case "sse": {
          expect(contentType).toContain("text/event-stream");
          const chunks = (await res.text())
            .split("\n\n")
            .filter((block) => block.startsWith("data: "))
            .map((block) => JSON.parse(block.slice(6)) as Envelope);
          expect(chunks.length).toBeGreaterThan(0);
          for (const chunk of chunks) expect(chunk.code, "every chunk a success").toBe(want.code ?? 0);
          if (want.data !== undefined) expect(chunks.map((c) => c.data)).toEqual(want.data);
          break;
        }
        case "bytes":
          expect(contentType).toContain("application/octet-stream");
          expect(await res.text()).toEqual(want.text);
          break;
      }
    });
  }
});
