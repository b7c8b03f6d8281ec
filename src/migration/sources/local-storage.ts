/**
 * The Go daemon's local plugin storage (PLUGIN_STORAGE_TYPE=local): a directory in which each
 * key is a file path relative to PLUGIN_STORAGE_LOCAL_ROOT, as langgenius/dify-cloud-kit
 * oss/local/localfile.go writes them (filepath.Join(root, key)). Only read, never written.
 */
import type { Dirent } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { join, relative, resolve, sep } from "node:path";
import type { GoStorage } from "./ports.js";

export class LocalGoStorage implements GoStorage {
  readonly description: string;
  private readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
    this.description = `directory ${this.root}`;
  }

  async read(key: string): Promise<Uint8Array | undefined> {
    try {
      const bytes = await readFile(join(this.root, key));
      return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR" || code === "EISDIR") return undefined;
      throw err;
    }
  }

  async list(prefix: string): Promise<string[]> {
    const start = join(this.root, prefix);
    let entries: Dirent[];
    try {
      entries = await readdir(start, { recursive: true, withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
    // Plain files only, like upstream's WalkDir (which neither follows links nor lists directories).
    return entries
      .filter((e) => e.isFile())
      .map((e) => relative(this.root, join(e.parentPath, e.name)).split(sep).join("/"));
  }
}
