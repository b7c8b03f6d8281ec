/**
 * Package signatures, compatible with upstream (pkg/plugin_packager/decoder/verifier.go and
 * signer/withkey): the zip archive comment holds `{"signature": base64, "time": unix seconds}`,
 * and the signature is RSA PKCS#1 v1.5 / SHA-256 over
 *
 *   sha256(entry 1 content) ‖ … ‖ sha256(entry n content) ‖ ASCII decimal of time
 *
 * with entries in central-directory order. A verified package may carry `.verification.dify.json`
 * (covered by the signature like any entry) saying which category of publisher signed it.
 */
import { createHash, createPublicKey, type KeyLike, type KeyObject, sign, verify } from "node:crypto";
import { z } from "zod";
import { internalError } from "./errors.js";
import { LANGGENIUS_PUBLIC_KEY_PEM } from "./official-public-key.js";
import type { PackageArchive } from "./package-archive.js";

export type AuthorizedCategory = "langgenius" | "partner" | "community";

export interface Verification {
  authorized_category: AuthorizedCategory;
}

export interface SignatureCheck {
  verified: boolean;
  verification: Verification | null;
}

export interface PackageSignature {
  /** base64 (standard alphabet, padded) of the raw RSA signature */
  signature: string;
  /** unix seconds; part of the signed data */
  time: number;
}

export const VERIFICATION_FILE = ".verification.dify.json";

const SignatureComment = z.object({ signature: z.string(), time: z.number().int().refine(Number.isSafeInteger) });
const VerificationFile = z.object({ authorized_category: z.enum(["langgenius", "partner", "community"]) });

// Go's StdEncoding: standard alphabet, padding required; it skips CR and LF.
const STRICT_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

const UNVERIFIED: SignatureCheck = { verified: false, verification: null };

/**
 * Checks the archive's signature against the official Langgenius key and any extra (third-party)
 * PEM keys, PKCS#1 or SPKI. A missing or malformed comment just means "not verified"; an extra
 * key that is not a valid RSA public key is a configuration error and throws.
 */
export function verifyPackageSignature(
  archive: PackageArchive,
  extraPublicKeysPem: readonly string[] = [],
): SignatureCheck {
  const keys = [LANGGENIUS_PUBLIC_KEY_PEM, ...extraPublicKeysPem].map(loadPublicKey);
  const signature = parseSignatureComment(archive.comment);
  if (!signature) return UNVERIFIED;

  const message = signedMessage(
    archive.entries.map((entry) => entry.data),
    signature.time,
  );
  const signatureBytes = Buffer.from(signature.signature, "base64");
  const matches = keys.some((key) => verifiesWith(key, message, signatureBytes));
  if (!matches) return UNVERIFIED;

  const file = archive.file(VERIFICATION_FILE);
  // Packages signed before the verification file existed were all signed by Langgenius.
  if (!file) return { verified: true, verification: { authorized_category: "langgenius" } };
  // Upstream fails to decode an unreadable verification file and so treats the package as
  // unverified; an unknown category is treated the same way here rather than passed through.
  const verification = parseJson(Buffer.from(file).toString("utf8"), VerificationFile);
  return verification ? { verified: true, verification } : UNVERIFIED;
}

/** Signs entry contents (in the order they will be stored) at `time`, as upstream's signer does. */
export function signPackageData(contents: readonly Uint8Array[], privateKey: KeyLike, time: number): PackageSignature {
  if (!Number.isSafeInteger(time)) throw new RangeError(`signature time must be an integer, got ${time}`);
  const signature = sign("sha256", signedMessage(contents, time), privateKey);
  return { signature: signature.toString("base64"), time };
}

/** The archive comment carrying a signature, in upstream's exact JSON shape. */
export function signatureComment(signature: PackageSignature): string {
  return JSON.stringify({ signature: signature.signature, time: signature.time });
}

function signedMessage(contents: readonly Uint8Array[], time: number): Buffer {
  const parts = contents.map((data) => createHash("sha256").update(data).digest());
  parts.push(Buffer.from(String(time), "ascii"));
  return Buffer.concat(parts);
}

function verifiesWith(key: KeyObject, message: Buffer, signature: Buffer): boolean {
  try {
    return verify("sha256", message, key, signature);
  } catch {
    return false; // e.g. a signature of the wrong length for this key
  }
}

function parseSignatureComment(comment: string): PackageSignature | null {
  const parsed = parseJson(comment, SignatureComment);
  if (!parsed) return null;
  const base64 = parsed.signature.replaceAll(/[\r\n]/g, "");
  return STRICT_BASE64.test(base64) ? { signature: base64, time: parsed.time } : null;
}

function parseJson<T>(text: string, schema: z.ZodType<T>): T | null {
  try {
    const result = schema.safeParse(JSON.parse(text));
    return result.success ? result.data : null;
  } catch {
    return null;
  }
}

const keyCache = new Map<string, KeyObject>();

function loadPublicKey(pem: string): KeyObject {
  const cached = keyCache.get(pem);
  if (cached) return cached;
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: "pem" });
  } catch (err) {
    throw internalError(`invalid signature verification public key: ${(err as Error).message}`);
  }
  if (key.asymmetricKeyType !== "rsa") {
    throw internalError(`invalid signature verification public key: expected RSA, got ${key.asymmetricKeyType}`);
  }
  keyCache.set(pem, key);
  return key;
}
