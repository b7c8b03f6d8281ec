/**
 * Reading a .difypkg (a plain zip) into memory, defensively.
 *
 * Packages arrive from untrusted uploads, so every limit is checked before the bytes it guards
 * are produced: the archive size up front, the entry count and declared sizes from the central
 * directory, and the real inflated size while inflating (a zip bomb that lies in its headers is
 * cut off as soon as it overshoots, never buffered whole).
 *
 * Names are kept as upstream sees them: raw UTF-8 bytes of the stored name, cleaned the way Go's
 * `path.Join(dir, file)` cleans them (`./a` → `a`, `a//b` → `a/b`). That cleaned name is what the
 * checksum hashes, so it must not be reinterpreted any further.
 */
import zlib from "node:zlib";
import yauzl from "yauzl";
import { badRequest, DaemonError } from "./errors.js";

export interface PackageEntry {
  name: string;
  data: Uint8Array;
}

export interface PackageLimits {
  maxPackageBytes: number;
  maxEntries: number;
  maxUncompressedBytes: number;
}

export interface PackageArchive {
  /** File entries in central-directory order (the signature covers them in this order). */
  readonly entries: readonly PackageEntry[];
  /** The zip archive comment; a signed package keeps its signature here. */
  readonly comment: string;
  /** Content of the entry stored under `path` (cleaned like stored names), if any. */
  file(path: string): Uint8Array | undefined;
}

/** Upstream's MAX_PLUGIN_PACKAGE_SIZE default (52428800) for both sizes. */
export const DEFAULT_PACKAGE_LIMITS: PackageLimits = {
  maxPackageBytes: 52_428_800,
  maxEntries: 10_000,
  maxUncompressedBytes: 52_428_800,
};

/** The fields of a yauzl central-directory record this module relies on (decodeStrings: false). */
interface RawEntry {
  fileName: Buffer;
  versionMadeBy: number;
  generalPurposeBitFlag: number;
  compressionMethod: number;
  compressedSize: number;
  uncompressedSize: number;
  externalFileAttributes: number;
  crc32: number;
}

interface RawZip {
  entryCount: number;
  comment: Buffer;
  readEntry(): void;
  close(): void;
  on(event: "entry", listener: (entry: RawEntry) => void): void;
  on(event: "end", listener: () => void): void;
  on(event: "error", listener: (err: Error) => void): void;
  readLocalFileHeader(
    entry: RawEntry,
    options: { minimal: true },
    callback: (err: Error | null, header: { fileDataStart: number }) => void,
  ): void;
}

const FLAG_ENCRYPTED = 0x1;
const METHOD_STORED = 0;
const METHOD_DEFLATED = 8;
const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;

const utf8 = new TextDecoder("utf-8", { fatal: true });

export async function readPackage(bytes: Uint8Array, limits: PackageLimits): Promise<PackageArchive> {
  if (bytes.byteLength > limits.maxPackageBytes) {
    throw badRequest(
      `plugin package file size exceeds the maximum limit: ${bytes.byteLength} bytes, the limit is ${limits.maxPackageBytes} bytes`,
    );
  }
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let zip: RawZip | undefined;
  try {
    zip = await openZip(buffer);
    if (zip.entryCount > limits.maxEntries) {
      throw badRequest(`difypkg has too many entries: ${zip.entryCount}, the limit is ${limits.maxEntries}`);
    }
    const files = checkDirectory(await readDirectory(zip), limits);
    const entries: PackageEntry[] = [];
    for (const { name, raw } of files) {
      entries.push({ name, data: await readEntryData(zip, buffer, raw, name) });
    }
    return makeArchive(entries, zip.comment.toString("utf8"));
  } catch (err) {
    throw asPackageError(err);
  } finally {
    zip?.close();
  }
}

/** Cleans a stored path like Go's path.Clean on a relative path: drops "", "." segments. */
export function cleanEntryPath(path: string): string {
  return path
    .split("/")
    .filter((segment) => segment !== "" && segment !== ".")
    .join("/");
}

function makeArchive(entries: PackageEntry[], comment: string): PackageArchive {
  const byName = new Map(entries.map((entry) => [entry.name, entry.data]));
  return {
    entries,
    comment,
    file: (path) => byName.get(cleanEntryPath(path)),
  };
}

function openZip(buffer: Buffer): Promise<RawZip> {
  return new Promise((resolve, reject) => {
    // decodeStrings: false keeps names as raw bytes (Go does the same; yauzl would otherwise
    // rewrite backslashes and decode CP437, changing what the checksum hashes).
    // validateEntrySizes: false because readEntryData checks sizes itself, with its own messages.
    const options = { lazyEntries: true, autoClose: false, decodeStrings: false, validateEntrySizes: false };
    yauzl.fromBuffer(buffer, options, (err, zip) => {
      if (err) reject(err);
      else resolve(zip as unknown as RawZip);
    });
  });
}

function readDirectory(zip: RawZip): Promise<RawEntry[]> {
  return new Promise((resolve, reject) => {
    const entries: RawEntry[] = [];
    zip.on("entry", (entry) => {
      entries.push(entry);
      zip.readEntry();
    });
    zip.on("end", () => resolve(entries));
    zip.on("error", reject);
    zip.readEntry();
  });
}

interface FileRecord {
  name: string;
  raw: RawEntry;
}

/** Validates every central-directory record before a single byte is inflated. */
function checkDirectory(records: readonly RawEntry[], limits: PackageLimits): FileRecord[] {
  let declaredTotal = 0;
  const files: FileRecord[] = [];
  const seen = new Set<string>();
  for (const raw of records) {
    const stored = decodeName(raw.fileName);
    checkSafePath(stored);
    if (((raw.externalFileAttributes >>> 16) & S_IFMT) === S_IFLNK) {
      throw badRequest(`difypkg entry ${JSON.stringify(stored)} is a symbolic link, which is not allowed`);
    }
    if (raw.generalPurposeBitFlag & FLAG_ENCRYPTED) {
      throw badRequest(`difypkg entry ${JSON.stringify(stored)} is encrypted, which is not supported`);
    }
    if (raw.compressionMethod !== METHOD_STORED && raw.compressionMethod !== METHOD_DEFLATED) {
      throw badRequest(
        `difypkg entry ${JSON.stringify(stored)} uses unsupported compression method ${raw.compressionMethod}`,
      );
    }
    declaredTotal += raw.uncompressedSize;
    if (declaredTotal > limits.maxUncompressedBytes) throw tooLarge(limits.maxUncompressedBytes);

    // Directory entries carry no content; upstream's packager never writes them.
    if (stored.endsWith("/")) continue;
    const name = cleanEntryPath(stored);
    if (name === "") throw badRequest(`difypkg entry ${JSON.stringify(stored)} has an empty path`);
    // Go's archive/zip refuses to open a name stored twice, so upstream fails such packages
    // while hashing them; rejecting up front avoids any "which copy wins" ambiguity.
    if (seen.has(name)) throw badRequest(`difypkg contains duplicate entry ${JSON.stringify(name)}`);
    seen.add(name);
    files.push({ name, raw });
  }
  return files;
}

function decodeName(raw: Buffer): string {
  try {
    return utf8.decode(raw);
  } catch {
    throw badRequest(`difypkg entry name is not valid UTF-8: ${raw.toString("hex")}`);
  }
}

/** Rejects names that could escape the extraction directory ("zip slip") or confuse tooling. */
function checkSafePath(stored: string): void {
  const quoted = JSON.stringify(stored);
  if (stored === "") throw badRequest("difypkg entry has an empty path");
  if (stored.includes("\\")) throw badRequest(`difypkg entry ${quoted} contains a backslash, which is not allowed`);
  if (stored.includes("\0")) throw badRequest(`difypkg entry ${quoted} contains a NUL character`);
  if (stored.startsWith("/") || /^[A-Za-z]:/.test(stored)) {
    throw badRequest(`difypkg entry ${quoted} has an absolute path, which is not allowed`);
  }
  if (stored.split("/").includes("..")) {
    throw badRequest(`difypkg entry ${quoted} traverses outside the package with "..", which is not allowed`);
  }
}

function tooLarge(limit: number): DaemonError {
  return badRequest(
    `plugin package size is too large, please ensure the uncompressed size is less than ${limit} bytes`,
  );
}

/** Entries declaring at most this many bytes inflate in one call capped at their declared size. */
const ONE_SHOT_INFLATE_MAX = 1024 * 1024;

function fileDataStart(zip: RawZip, entry: RawEntry): Promise<number> {
  return new Promise((resolve, reject) => {
    zip.readLocalFileHeader(entry, { minimal: true }, (err, header) => {
      if (err) reject(err);
      else resolve(header.fileDataStart);
    });
  });
}

/**
 * Produces one entry's content, never more than its declared size (which the directory check
 * already bounded by the package-wide limit), then checks the size and CRC-32 like Go does.
 */
async function readEntryData(zip: RawZip, archive: Buffer, entry: RawEntry, name: string): Promise<Buffer> {
  const start = await fileDataStart(zip, entry);
  const compressed = archive.subarray(start, start + entry.compressedSize);
  const declared = entry.uncompressedSize;
  const content =
    entry.compressionMethod === METHOD_STORED
      ? compressed
      : declared <= ONE_SHOT_INFLATE_MAX
        ? inflateCapped(compressed, declared, name)
        : await inflateStreaming(compressed, declared, name);

  if (content.length > declared) throw overshoot(name, declared);
  if (content.length < declared) {
    throw badRequest(`difypkg entry ${JSON.stringify(name)} is truncated: ${content.length} of ${declared} bytes`);
  }
  // Go's archive/zip skips the check when the recorded CRC is 0; so do we.
  if (entry.crc32 !== 0 && zlib.crc32(content) !== entry.crc32) {
    throw badRequest(`difypkg: checksum error in entry ${JSON.stringify(name)}`);
  }
  // A fresh, unpooled copy: its .buffer holds exactly this entry, not the whole package.
  const data = Buffer.allocUnsafeSlow(content.length);
  content.copy(data);
  return data;
}

function inflateCapped(compressed: Buffer, declared: number, name: string): Buffer {
  try {
    // Inflation stops with ERR_BUFFER_TOO_LARGE as soon as the output would pass the cap.
    return zlib.inflateRawSync(compressed, { maxOutputLength: Math.max(declared, 1) });
  } catch (err) {
    if ((err as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") throw overshoot(name, declared);
    throw err;
  }
}

/** Large entries inflate chunk by chunk, and stop the moment they pass their declared size. */
async function inflateStreaming(compressed: Buffer, declared: number, name: string): Promise<Buffer> {
  const inflater = zlib.createInflateRaw();
  inflater.end(compressed);
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of inflater as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > declared) throw overshoot(name, declared);
      chunks.push(chunk);
    }
  } finally {
    inflater.destroy();
  }
  return Buffer.concat(chunks, size);
}

function overshoot(name: string, declared: number): DaemonError {
  return badRequest(`difypkg entry ${JSON.stringify(name)} inflates to more than its declared ${declared} bytes`);
}

/** Zip-level failures read like upstream's: "zip" becomes "difypkg". */
function asPackageError(err: unknown): DaemonError {
  if (err instanceof DaemonError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (/end of central directory record signature not found/i.test(message)) {
    return badRequest("difypkg: not a valid difypkg file");
  }
  return badRequest(`difypkg: ${message.replaceAll(/zip/gi, "difypkg")}`);
}
