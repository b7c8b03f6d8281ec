/**
 * BlobStore in a local directory, for the local daemon.
 *
 * Keys behave as in S3: "a" and "a/b" can both exist. Each "/"-separated segment becomes a
 * directory and the last one a file named `<segment>.blob`; segments are percent-encoded, with a
 * leading "." and a trailing ".blob" escaped too, so a file name can never equal a directory name
 * and names starting with "." stay reserved for the store (its `.tmp` directory).
 * Writes go to a temporary file first and are renamed into place, so a reader sees the old bytes
 * or the new ones, never a torn file.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join, resolve, sep } from "node:path";
import type { BlobStore } from "../../ports/blob-store.js";

const BLOB_SUFFIX = ".blob";

export class DiskBlobStore implements BlobStore {
  private readonly root: string;
  private readonly tmpDir: string;

  constructor(root: string) {
    this.root = resolve(root);
    this.tmpDir = join(this.root, ".tmp");
  }

  async put(key: string, body: Uint8Array): Promise<void> {
    const path = this.pathOf(key);
    await mkdir(dirname(path), { recursive: true });
    await mkdir(this.tmpDir, { recursive: true });
    const tmp = join(this.tmpDir, `${process.pid}-${randomBytes(8).toString("hex")}`);
    try {
      await writeFile(tmp, body, { flush: true });
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    try {
      const bytes = await readFile(this.pathOf(key));
      return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  async exists(key: string): Promise<boolean> {
    try {
      return (await stat(this.pathOf(key))).isFile();
    } catch (err) {
      if (isMissing(err)) return false;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    await rm(this.pathOf(key), { force: true });
  }

  /** Maps a key to its file, refusing keys that are empty or could name something outside the root. */
  private pathOf(key: string): string {
    if (key === "" || key.startsWith("/") || key.includes("\0")) {
      throw new TypeError(`invalid blob key ${JSON.stringify(key)}`);
    }
    const segments = key.split("/");
    if (segments.some((segment) => segment === "" || segment === "." || segment === "..")) {
      throw new TypeError(`invalid blob key ${JSON.stringify(key)}: empty, "." or ".." segment`);
    }
    const names = segments.map(encodeSegment);
    names[names.length - 1] += BLOB_SUFFIX;
    const path = join(this.root, ...names);
    // Belt and braces: encoding already rules this out.
    if (!path.startsWith(this.root + sep)) throw new TypeError(`blob key ${JSON.stringify(key)} escapes the store`);
    return path;
  }
}

function encodeSegment(segment: string): string {
  return encodeURIComponent(segment)
    .replace(/\*/g, "%2A") // not allowed in Windows file names
    .replace(/^\./, "%2E")
    .replace(/\.(blob)$/i, "%2E$1");
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  // ENOTDIR: a path segment is a file, i.e. nothing is stored under that key.
  return code === "ENOENT" || code === "ENOTDIR";
}
