/**
 * Builds .difypkg archives in memory for tests.
 *
 *   const bytes = await buildPackage({ "manifest.yaml": "...", "main.py": "..." });
 *   const keys = testSigningKeys();
 *   const signed = await buildPackage(files, { sign: { privateKey: keys.privateKey, time: 1700000000 },
 *                                               verification: { authorized_category: "partner" } });
 *   verifyPackageSignature(await readPackage(signed, DEFAULT_PACKAGE_LIMITS), [keys.publicKeyPem]);
 *
 * Entries are stored in the order given (object key order, or array order). Paths are written
 * verbatim, even unsafe ones such as "../x" or "a\\b", so tests can check that they are refused.
 * For hand-crafted corruption (lying sizes, flags), `patchZipRecords` edits central-directory
 * records of a built archive in place.
 */
import { generateKeyPairSync, type KeyLike, type KeyObject } from "node:crypto";
import yazl from "yazl";
import { signatureComment, signPackageData, VERIFICATION_FILE, type Verification } from "../../src/domain/signature.js";

export type PackageContent = string | Uint8Array;

export interface PackageFile {
  path: string;
  content?: PackageContent;
  /** Unix mode stored in the external attributes, e.g. 0o120777 for a symbolic link. */
  mode?: number;
  /** Store an explicit directory entry (`path/`) instead of a file. */
  directory?: boolean;
}

export type PackageFiles = Readonly<Record<string, PackageContent>> | readonly PackageFile[];

export interface BuildPackageOptions {
  /** Sign like upstream's signer; `time` defaults to now (unix seconds). */
  sign?: { privateKey: KeyLike; time?: number };
  /** Appended as the last entry, `.verification.dify.json`; a string is stored as-is. */
  verification?: Verification | string;
  /** Archive comment to store when not signing (e.g. a malformed signature). */
  comment?: string;
  /** Deflate entries (default true); false stores them. */
  compress?: boolean;
}

const FIXED_MTIME = new Date(Date.UTC(2025, 0, 1));

export async function buildPackage(files: PackageFiles, options: BuildPackageOptions = {}): Promise<Uint8Array> {
  const list: PackageFile[] = Array.isArray(files)
    ? [...(files as readonly PackageFile[])]
    : Object.entries(files as Record<string, PackageContent>).map(([path, content]) => ({ path, content }));
  if (options.verification !== undefined) {
    const text = typeof options.verification === "string" ? options.verification : JSON.stringify(options.verification);
    list.push({ path: VERIFICATION_FILE, content: text });
  }

  const zip = new yazl.ZipFile();
  const renames = new Map<number, string>(); // central-directory index → verbatim path
  list.forEach((file, index) => {
    const path = file.directory && !file.path.endsWith("/") ? `${file.path}/` : file.path;
    // yazl refuses or rewrites unsafe paths; store a same-length placeholder and patch it after.
    const safe = yazlWouldKeep(path, file.directory ?? false) ? path : placeholder(path, file.directory ?? false);
    if (safe !== path) renames.set(index, path);
    if (file.directory) {
      zip.addEmptyDirectory(safe, { mtime: FIXED_MTIME, ...(file.mode !== undefined && { mode: file.mode }) });
    } else {
      zip.addBuffer(toBuffer(file.content ?? ""), safe, {
        mtime: FIXED_MTIME,
        compress: options.compress ?? true,
        ...(file.mode !== undefined && { mode: file.mode }),
      });
    }
  });

  let comment = options.comment;
  if (options.sign) {
    const contents = list.filter((file) => !file.directory).map((file) => toBuffer(file.content ?? ""));
    const time = options.sign.time ?? Math.floor(Date.now() / 1000);
    comment = signatureComment(signPackageData(contents, options.sign.privateKey, time));
  }
  // A Buffer comment is stored byte for byte (a string would be re-encoded as CP437).
  zip.end({ comment: Buffer.from(comment ?? "", "utf8") as unknown as string, forceZip64Format: false });

  const bytes = await collect(zip.outputStream);
  if (renames.size > 0) {
    patchZipRecords(bytes, (record) => {
      const verbatim = renames.get(record.index);
      if (verbatim === undefined) return;
      const name = Buffer.from(verbatim, "utf8");
      name.copy(bytes, record.nameOffset);
      name.copy(bytes, record.localNameOffset);
    });
  }
  return bytes;
}

/** One central-directory record of a built archive; offsets are absolute within the bytes. */
export interface ZipRecord {
  index: number;
  name: string;
  /** Start of the central-directory record (signature 0x02014b50): flags at +8, method at +10,
   *  crc32 at +16, compressed size at +20, uncompressed size at +24, external attributes at +38. */
  offset: number;
  nameOffset: number;
  /** Start of the matching local file header; its name starts at localNameOffset. */
  localOffset: number;
  localNameOffset: number;
}

/** Calls `patch` for each central-directory record; it may edit `bytes` through `view`. */
export function patchZipRecords(bytes: Uint8Array, patch: (record: ZipRecord, view: DataView) => void): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let eocd = bytes.byteLength - 22;
  while (eocd >= 0 && view.getUint32(eocd, true) !== 0x06054b50) eocd -= 1;
  if (eocd < 0) throw new Error("no end of central directory record");
  const count = view.getUint16(eocd + 10, true);
  let offset = view.getUint32(eocd + 16, true);
  for (let index = 0; index < count; index += 1) {
    const nameLength = view.getUint16(offset + 28, true);
    const extraLength = view.getUint16(offset + 30, true);
    const commentLength = view.getUint16(offset + 32, true);
    const localOffset = view.getUint32(offset + 42, true);
    const nameOffset = offset + 46;
    const name = Buffer.from(bytes.subarray(nameOffset, nameOffset + nameLength)).toString("utf8");
    patch({ index, name, offset, nameOffset, localOffset, localNameOffset: localOffset + 30 }, view);
    offset = nameOffset + nameLength + extraLength + commentLength;
  }
}

let cachedKeys: { privateKey: KeyObject; publicKeyPem: string } | undefined;

/** An RSA key pair for signing test packages, generated once per process; the public key is
 *  PKCS#1 PEM ("RSA PUBLIC KEY"), the format upstream's key files use. */
export function testSigningKeys(): { privateKey: KeyObject; publicKeyPem: string } {
  if (!cachedKeys) {
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    cachedKeys = { privateKey, publicKeyPem: publicKey.export({ type: "pkcs1", format: "pem" }).toString() };
  }
  return cachedKeys;
}

function yazlWouldKeep(path: string, directory: boolean): boolean {
  if (path === "" || path.includes("\\") || /^[a-zA-Z]:/.test(path) || path.startsWith("/")) return false;
  if (path.split("/").includes("..")) return false;
  return directory || !path.endsWith("/");
}

function placeholder(path: string, directory: boolean): string {
  const length = Buffer.byteLength(path, "utf8");
  if (length === 0) throw new Error("package-builder cannot store an empty path");
  // yazl appends "/" to directory names, so leave room for it.
  return directory ? `${"x".repeat(length - 1)}/` : "x".repeat(length);
}

function toBuffer(content: PackageContent): Buffer {
  return typeof content === "string" ? Buffer.from(content, "utf8") : Buffer.from(content);
}

async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
