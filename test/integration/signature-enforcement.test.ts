/**
 * Signature enforcement with the daemon's defaults (FORCE_VERIFYING_SIGNATURE on): only
 * packages signed by a trusted key are accepted; an unsigned or tampered one is refused and
 * nothing is stored. A test key stands in for a publisher's key (third-party key file).
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { packFixture } from "../support/fixture-packages.js";
import { startTestDaemon, type TestDaemon, uploadForm } from "../support/local-daemon.js";
import { patchZipRecords, testSigningKeys } from "../support/package-builder.js";

const M = "/plugin/aaaaaaaa-2222-3333-4444-555555555555/management";
let d: TestDaemon;

beforeAll(async () => {
  const keyFile = join(mkdtempSync(join(tmpdir(), "keys-")), "publisher.pem");
  writeFileSync(keyFile, testSigningKeys().publicKeyPem);
  d = await startTestDaemon({
    FORCE_VERIFYING_SIGNATURE: "",
    THIRD_PARTY_SIGNATURE_VERIFICATION_ENABLED: "true",
    THIRD_PARTY_SIGNATURE_VERIFICATION_PUBLIC_KEYS: keyFile,
  });
});
afterAll(async () => {
  await d?.stop();
});

const upload = async (pkg: Uint8Array) =>
  (await (await d.call(`${M}/install/upload/package`, { method: "POST", body: uploadForm(pkg) })).json()) as {
    code: number;
    message: string;
    data: any;
  };
const total = async () => ((await (await d.call(`${M}/list?page=1&page_size=10`)).json()) as any).data.total as number;
/** Whether the daemon has the package (fetch/identifier says whether a tenant has it installed). */
const stored = async (uid: string) =>
  ((await (await d.call(`${M}/fetch/manifest?plugin_unique_identifier=${encodeURIComponent(uid)}`)).json()) as any)
    .code === 0;

describe("signature enforcement (default on)", () => {
  it("refuses an unsigned package", async () => {
    const env = await upload(await packFixture("echo-tool"));
    expect(env.code).toBe(-400);
    expect(JSON.parse(env.message).message).toBe(
      "plugin verification has been enabled, and the plugin you want to install has a bad signature",
    );
    expect(await total()).toBe(0);
  });

  it("accepts a package signed by a trusted key, with its verification category", async () => {
    const pkg = await packFixture(
      "echo-tool",
      {},
      { sign: { privateKey: testSigningKeys().privateKey }, verification: { authorized_category: "partner" } },
    );
    const env = await upload(pkg);
    expect(env.code).toBe(0);
    expect(env.data.manifest.verified).toBe(true);
    expect(env.data.verification).toEqual({ authorized_category: "partner" });
    expect(await stored(env.data.unique_identifier)).toBe(true);
  });

  it("refuses the same signed package with one byte changed, and stores nothing", async () => {
    const pkg = await packFixture(
      "echo-tool",
      { version: "0.0.4" },
      { sign: { privateKey: testSigningKeys().privateKey }, compress: false },
    );
    // Flip one byte of main.py's content in place (stored entries keep the archive structure valid).
    const text = Buffer.from(pkg);
    const at = text.indexOf("Plugin(");
    expect(at).toBeGreaterThan(0);
    text[at] = "p".charCodeAt(0);
    // A zero CRC is not checked (like Go's reader), so the edited entry still reads.
    patchZipRecords(text, (record, view) => {
      if (record.name !== "main.py") return;
      view.setUint32(record.offset + 16, 0, true);
      view.setUint32(record.localOffset + 14, 0, true);
    });
    const env = await upload(text);
    expect(env.code).toBe(-400);
    expect(JSON.parse(env.message).message).toContain("bad signature");
  });
});
