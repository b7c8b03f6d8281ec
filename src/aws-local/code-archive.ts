/**
 * A function's code zip unpacked as Lambda unpacks it into /var/task: files with their modes
 * (an executable stays executable), within Lambda's 250 MB unzipped limit, no path leaving the
 * directory.
 */
import { createWriteStream } from "node:fs";
import { chmod, mkdir } from "node:fs/promises";
import { dirname, join, resolve, sep } from "node:path";
import { pipeline } from "node:stream/promises";
import yauzl from "yauzl";

/** Lambda's limit for a function's unzipped code and layers together. */
export const LAMBDA_MAX_UNZIPPED_BYTES = 262_144_000;

/** Unpacks `zip` into `dir`; returns the unzipped size. Throws when the zip is invalid or too large. */
export async function unpackCode(zip: Uint8Array, dir: string, maxBytes = LAMBDA_MAX_UNZIPPED_BYTES): Promise<number> {
  const root = resolve(dir);
  await mkdir(root, { recursive: true });
  const archive = await new Promise<yauzl.ZipFile>((ok, fail) =>
    yauzl.fromBuffer(Buffer.from(zip), { lazyEntries: true }, (err, z) => (err ? fail(err) : ok(z))),
  );
  let total = 0;
  try {
    for (;;) {
      const entry = await new Promise<yauzl.Entry | undefined>((ok, fail) => {
        archive.once("entry", ok);
        archive.once("end", () => ok(undefined));
        archive.once("error", fail);
        archive.readEntry();
      });
      archive.removeAllListeners("entry").removeAllListeners("end").removeAllListeners("error");
      if (!entry) break;
      const target = resolve(root, entry.fileName);
      if (target !== root && !target.startsWith(root + sep))
        throw new Error(`code zip entry ${entry.fileName} points outside the task root`);
      if (entry.fileName.endsWith("/")) {
        await mkdir(target, { recursive: true });
        continue;
      }
      total += entry.uncompressedSize;
      if (total > maxBytes) throw new Error(`Unzipped size must be smaller than ${maxBytes} bytes`);
      await mkdir(dirname(target), { recursive: true });
      const stream = await new Promise<NodeJS.ReadableStream>((ok, fail) =>
        archive.openReadStream(entry, (err, s) => (err ? fail(err) : ok(s))),
      );
      await pipeline(stream, createWriteStream(target));
      // The upper 16 bits of the external attributes are the Unix mode, when the zip was made on Unix.
      const mode = (entry.externalFileAttributes >>> 16) & 0o777;
      if (mode) await chmod(target, mode | 0o400);
    }
  } finally {
    archive.close();
  }
  return total;
}

/** Where one version of a function's code goes. */
export const codeDirectory = (stateDir: string, functionName: string, codeRevision: number) =>
  join(stateDir, "code", functionName, String(codeRevision));
