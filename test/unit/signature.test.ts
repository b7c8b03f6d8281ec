import { createHash, generateKeyPairSync, verify } from "node:crypto";
import { describe, expect, it } from "vitest";
import { DaemonError } from "../../src/domain/errors.js";
import { DEFAULT_PACKAGE_LIMITS, readPackage } from "../../src/domain/package-archive.js";
import { verifyPackageSignature } from "../../src/domain/signature.js";
import { buildPackage, testSigningKeys } from "../support/package-builder.js";

const FILES = {
  "manifest.yaml": "author: acme\nname: demo\nversion: 0.0.1\n",
  "main.py": "print('hello')\n",
  "_assets/icon.svg": "<svg/>",
};
const TIME = 1_735_689_600;

const read = async (bytes: Uint8Array) => readPackage(bytes, DEFAULT_PACKAGE_LIMITS);

describe("package signatures", () => {
  const keys = testSigningKeys();

  it("verifies a package signed with a trusted extra key", async () => {
    const archive = await read(await buildPackage(FILES, { sign: { privateKey: keys.privateKey, time: TIME } }));
    expect(verifyPackageSignature(archive, [keys.publicKeyPem])).toEqual({
      verified: true,
      verification: { authorized_category: "langgenius" }, // no verification file: upstream's default
    });
  });

  it("stores the signature in the archive comment in upstream's format and over upstream's data", async () => {
    const archive = await read(await buildPackage(FILES, { sign: { privateKey: keys.privateKey, time: TIME } }));
    const comment = JSON.parse(archive.comment) as { signature: string; time: number };
    expect(Object.keys(comment)).toEqual(["signature", "time"]);
    expect(comment.time).toBe(TIME);
    // sha256 of each entry in stored order, then the decimal time.
    const data = Buffer.concat([
      ...Object.values(FILES).map((content) => createHash("sha256").update(content).digest()),
      Buffer.from(String(TIME)),
    ]);
    expect(verify("sha256", data, keys.publicKeyPem, Buffer.from(comment.signature, "base64"))).toBe(true);
  });

  it("reads the signer's category from .verification.dify.json", async () => {
    const archive = await read(
      await buildPackage(FILES, {
        sign: { privateKey: keys.privateKey, time: TIME },
        verification: { authorized_category: "partner" },
      }),
    );
    expect(verifyPackageSignature(archive, [keys.publicKeyPem])).toEqual({
      verified: true,
      verification: { authorized_category: "partner" },
    });
  });

  it("does not verify a signed package whose verification file is unreadable or names an unknown category", async () => {
    for (const verification of ["not json", '{"authorized_category":"friends"}']) {
      const archive = await read(
        await buildPackage(FILES, { sign: { privateKey: keys.privateKey, time: TIME }, verification }),
      );
      expect(verifyPackageSignature(archive, [keys.publicKeyPem])).toEqual({ verified: false, verification: null });
    }
  });

  it("does not verify when one byte of one entry differs from what was signed", async () => {
    const signed = await read(await buildPackage(FILES, { sign: { privateKey: keys.privateKey, time: TIME } }));
    // Same signature comment, content changed by one byte.
    const tampered = await read(
      await buildPackage({ ...FILES, "main.py": "print('hellO')\n" }, { comment: signed.comment }),
    );
    expect(verifyPackageSignature(tampered, [keys.publicKeyPem]).verified).toBe(false);
  });

  it("does not verify when the signed time is changed", async () => {
    const signed = await read(await buildPackage(FILES, { sign: { privateKey: keys.privateKey, time: TIME } }));
    const comment = signed.comment.replace(String(TIME), String(TIME + 1));
    const altered = await read(await buildPackage(FILES, { comment }));
    expect(verifyPackageSignature(altered, [keys.publicKeyPem]).verified).toBe(false);
  });

  it.each([
    ["no comment", ""],
    ["a comment that is not JSON", "hello"],
    ["a signature that is not base64", JSON.stringify({ signature: "***", time: TIME })],
    ["a fractional time", JSON.stringify({ signature: "AAAA", time: 1.5 })],
  ])("does not verify a package with %s", async (_label, comment) => {
    const archive = await read(await buildPackage(FILES, { comment }));
    expect(verifyPackageSignature(archive, [keys.publicKeyPem])).toEqual({ verified: false, verification: null });
  });

  it("does not verify a test-signed package against the official key alone", async () => {
    const archive = await read(await buildPackage(FILES, { sign: { privateKey: keys.privateKey, time: TIME } }));
    expect(verifyPackageSignature(archive).verified).toBe(false);
  });

  it("does not verify with an unrelated key, and accepts SPKI as well as PKCS#1 keys", async () => {
    const other = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const otherPem = other.publicKey.export({ type: "spki", format: "pem" }).toString();
    const archive = await read(await buildPackage(FILES, { sign: { privateKey: keys.privateKey, time: TIME } }));
    expect(verifyPackageSignature(archive, [otherPem]).verified).toBe(false);

    const byOther = await read(await buildPackage(FILES, { sign: { privateKey: other.privateKey, time: TIME } }));
    expect(verifyPackageSignature(byOther, [keys.publicKeyPem, otherPem]).verified).toBe(true);
  });

  it("reports an extra key that is not an RSA public key as a configuration error", async () => {
    const archive = await read(await buildPackage(FILES));
    expect(() =>
      verifyPackageSignature(archive, ["-----BEGIN RSA PUBLIC KEY-----\nnope\n-----END RSA PUBLIC KEY-----"]),
    ).toThrow(DaemonError);
    const ed = generateKeyPairSync("ed25519").publicKey.export({ type: "spki", format: "pem" }).toString();
    expect(() => verifyPackageSignature(archive, [ed])).toThrow(/expected RSA/);
  });
});
