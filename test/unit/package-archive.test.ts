import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { packageChecksum } from "../../src/domain/checksum.js";
import { DaemonError } from "../../src/domain/errors.js";
import { DEFAULT_PACKAGE_LIMITS, type PackageLimits, readPackage } from "../../src/domain/package-archive.js";
import { buildPackage, patchZipRecords } from "../support/package-builder.js";

const FILES = {
  "manifest.yaml": "name: demo\nversion: 0.0.1\n",
  "main.py": "print('hello')\n",
  "_assets/icon.svg": "<svg/>",
  "provider/demo.yaml": "identity: {}\n",
};

const sha256 = (data: Uint8Array | string) => createHash("sha256").update(data).digest();

/** The spec's algorithm, written out independently of the implementation under test. */
function expectedChecksum(files: Record<string, string>): string {
  const names = Object.keys(files).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const joined = Buffer.concat(names.flatMap((name) => [sha256(name), sha256(files[name]!)]));
  return sha256(joined).toString("hex");
}

async function rejection(promise: Promise<unknown>): Promise<DaemonError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DaemonError);
  const daemonError = err as DaemonError;
  expect(daemonError.errorType).toBe("PluginDaemonBadRequestError");
  return daemonError;
}

const small = (overrides: Partial<PackageLimits>): PackageLimits => ({ ...DEFAULT_PACKAGE_LIMITS, ...overrides });

describe("readPackage", () => {
  it("returns every file in stored order with its content and the archive comment", async () => {
    const bytes = await buildPackage(FILES, { comment: "hello comment" });
    const archive = await readPackage(bytes, DEFAULT_PACKAGE_LIMITS);

    expect(archive.entries.map((e) => e.name)).toEqual(Object.keys(FILES));
    expect(Buffer.from(archive.file("main.py")!).toString()).toBe(FILES["main.py"]);
    expect(archive.comment).toBe("hello comment");
    expect(archive.file("missing.py")).toBeUndefined();
  });

  it("normalises ./ and repeated slashes in stored and looked-up paths like upstream", async () => {
    const archive = await readPackage(
      await buildPackage({ "./manifest.yaml": "m", "tools//a.py": "a" }),
      DEFAULT_PACKAGE_LIMITS,
    );
    expect(archive.entries.map((e) => e.name)).toEqual(["manifest.yaml", "tools/a.py"]);
    expect(Buffer.from(archive.file("./tools/a.py")!).toString()).toBe("a");
    expect(archive.file("manifest.yaml")).toBeDefined();
  });

  it("skips explicit directory entries", async () => {
    const bytes = await buildPackage([
      { path: "_assets", directory: true },
      { path: "_assets/icon.svg", content: "<svg/>" },
      { path: "manifest.yaml", content: "m" },
    ]);
    const archive = await readPackage(bytes, DEFAULT_PACKAGE_LIMITS);
    expect(archive.entries.map((e) => e.name)).toEqual(["_assets/icon.svg", "manifest.yaml"]);
  });

  it("reads stored (uncompressed) entries as well as deflated ones", async () => {
    const archive = await readPackage(await buildPackage(FILES, { compress: false }), DEFAULT_PACKAGE_LIMITS);
    expect(Buffer.from(archive.file("manifest.yaml")!).toString()).toBe(FILES["manifest.yaml"]);
  });

  describe("refuses unsafe archives", () => {
    it("rejects bytes that are not a zip, naming difypkg rather than zip", async () => {
      const err = await rejection(readPackage(Buffer.from("definitely not a package"), DEFAULT_PACKAGE_LIMITS));
      expect(err.message).toBe("difypkg: not a valid difypkg file");
    });

    it("rejects an archive cut short", async () => {
      const bytes = await buildPackage(FILES);
      const err = await rejection(readPackage(bytes.subarray(0, bytes.length - 10), DEFAULT_PACKAGE_LIMITS));
      expect(err.message).toMatch(/difypkg/);
      expect(err.message).not.toMatch(/zip/);
    });

    it("rejects a package file larger than the compressed limit", async () => {
      const bytes = await buildPackage(FILES);
      const err = await rejection(readPackage(bytes, small({ maxPackageBytes: bytes.length - 1 })));
      expect(err.message).toContain(`the limit is ${bytes.length - 1} bytes`);
    });

    it("rejects more entries than allowed", async () => {
      const err = await rejection(readPackage(await buildPackage(FILES), small({ maxEntries: 3 })));
      expect(err.message).toBe("difypkg has too many entries: 4, the limit is 3");
    });

    it("rejects packages whose declared uncompressed size exceeds the limit, with upstream's message", async () => {
      const bytes = await buildPackage({ "manifest.yaml": "m", "big.bin": new Uint8Array(2000) });
      const err = await rejection(readPackage(bytes, small({ maxUncompressedBytes: 1000 })));
      expect(err.message).toBe(
        "plugin package size is too large, please ensure the uncompressed size is less than 1000 bytes",
      );
    });

    it.each([100, 2 * 1024 * 1024])(
      "stops an entry that inflates beyond the %i bytes its header declares (zip bomb)",
      async (declared) => {
        // 16 MiB of zeros compress to ~16 KiB; the header then claims far less.
        const bytes = await buildPackage({ "manifest.yaml": "m", "bomb.bin": new Uint8Array(16 * 1024 * 1024) });
        patchZipRecords(bytes, (record, view) => {
          if (record.name === "bomb.bin") view.setUint32(record.offset + 24, declared, true);
        });
        const err = await rejection(readPackage(bytes, DEFAULT_PACKAGE_LIMITS));
        expect(err.message).toBe(`difypkg entry "bomb.bin" inflates to more than its declared ${declared} bytes`);
      },
    );

    it("rejects an entry that inflates to less than it declares", async () => {
      const bytes = await buildPackage({ "manifest.yaml": "m", "a.txt": "abcdef" });
      patchZipRecords(bytes, (record, view) => {
        if (record.name === "a.txt") view.setUint32(record.offset + 24, 60, true);
      });
      const err = await rejection(readPackage(bytes, DEFAULT_PACKAGE_LIMITS));
      expect(err.message).toBe('difypkg entry "a.txt" is truncated: 6 of 60 bytes');
    });

    it("rejects an entry whose content does not match its CRC-32", async () => {
      const bytes = await buildPackage({ "manifest.yaml": "m", "a.txt": "abcdef" }, { compress: false });
      patchZipRecords(bytes, (record, view) => {
        if (record.name !== "a.txt") return;
        const dataStart =
          record.localOffset +
          30 +
          view.getUint16(record.localOffset + 26, true) +
          view.getUint16(record.localOffset + 28, true);
        bytes[dataStart] = "X".charCodeAt(0);
      });
      const err = await rejection(readPackage(bytes, DEFAULT_PACKAGE_LIMITS));
      expect(err.message).toBe('difypkg: checksum error in entry "a.txt"');
    });

    it.each([
      ["../evil.py", /traverses outside the package/],
      ["tools/../../evil.py", /traverses outside the package/],
      ["/etc/passwd", /absolute path/],
      ["C:/evil.py", /absolute path/],
      ["tools\\evil.py", /backslash/],
    ])("rejects the path %j (zip slip)", async (path, message) => {
      const err = await rejection(
        readPackage(await buildPackage({ "manifest.yaml": "m", [path]: "x" }), DEFAULT_PACKAGE_LIMITS),
      );
      expect(err.message).toMatch(message);
      expect(err.message).toContain(JSON.stringify(path));
    });

    it("rejects symbolic links", async () => {
      const bytes = await buildPackage([
        { path: "manifest.yaml", content: "m" },
        { path: "link", content: "/etc/passwd", mode: 0o120777 },
      ]);
      const err = await rejection(readPackage(bytes, DEFAULT_PACKAGE_LIMITS));
      expect(err.message).toBe('difypkg entry "link" is a symbolic link, which is not allowed');
    });

    it("rejects encrypted entries", async () => {
      const bytes = await buildPackage(FILES);
      patchZipRecords(bytes, (record, view) => {
        if (record.name === "main.py")
          view.setUint16(record.offset + 8, view.getUint16(record.offset + 8, true) | 1, true);
      });
      const err = await rejection(readPackage(bytes, DEFAULT_PACKAGE_LIMITS));
      expect(err.message).toBe('difypkg entry "main.py" is encrypted, which is not supported');
    });

    it("rejects compression methods other than stored and deflate", async () => {
      const bytes = await buildPackage(FILES);
      patchZipRecords(bytes, (record, view) => {
        if (record.name === "main.py") view.setUint16(record.offset + 10, 12, true);
      });
      const err = await rejection(readPackage(bytes, DEFAULT_PACKAGE_LIMITS));
      expect(err.message).toBe('difypkg entry "main.py" uses unsupported compression method 12');
    });

    it("rejects a name stored twice, including after ./ normalisation", async () => {
      const bytes = await buildPackage([
        { path: "manifest.yaml", content: "first" },
        { path: "./manifest.yaml", content: "second" },
      ]);
      const err = await rejection(readPackage(bytes, DEFAULT_PACKAGE_LIMITS));
      expect(err.message).toBe('difypkg contains duplicate entry "manifest.yaml"');
    });
  });
});

describe("packageChecksum", () => {
  it("matches the specified sha256-over-sorted-entries algorithm", async () => {
    const archive = await readPackage(await buildPackage(FILES), DEFAULT_PACKAGE_LIMITS);
    const checksum = packageChecksum(archive.entries);
    expect(checksum).toMatch(/^[0-9a-f]{64}$/);
    expect(checksum).toBe(expectedChecksum(FILES));
  });

  it("does not depend on the order entries are stored in, nor on compression", async () => {
    const reversed = Object.fromEntries(Object.entries(FILES).reverse());
    const a = await readPackage(await buildPackage(FILES), DEFAULT_PACKAGE_LIMITS);
    const b = await readPackage(await buildPackage(reversed, { compress: false }), DEFAULT_PACKAGE_LIMITS);
    expect(packageChecksum(b.entries)).toBe(packageChecksum(a.entries));
  });

  it("ignores the archive comment but covers .verification.dify.json", async () => {
    const plain = await readPackage(await buildPackage(FILES), DEFAULT_PACKAGE_LIMITS);
    const commented = await readPackage(await buildPackage(FILES, { comment: "{}" }), DEFAULT_PACKAGE_LIMITS);
    const withVerification = await readPackage(
      await buildPackage(FILES, { verification: { authorized_category: "partner" } }),
      DEFAULT_PACKAGE_LIMITS,
    );
    expect(packageChecksum(commented.entries)).toBe(packageChecksum(plain.entries));
    expect(packageChecksum(withVerification.entries)).toBe(
      expectedChecksum({ ...FILES, ".verification.dify.json": '{"authorized_category":"partner"}' }),
    );
  });

  it("changes when a single byte of content or a file name changes", async () => {
    const base = packageChecksum((await readPackage(await buildPackage(FILES), DEFAULT_PACKAGE_LIMITS)).entries);
    const edited = { ...FILES, "main.py": "print('hellO')\n" };
    const renamed = { ...FILES, "main2.py": FILES["main.py"] } as Record<string, string>;
    delete renamed["main.py"];
    for (const files of [edited, renamed]) {
      const archive = await readPackage(await buildPackage(files), DEFAULT_PACKAGE_LIMITS);
      expect(packageChecksum(archive.entries)).not.toBe(base);
      expect(packageChecksum(archive.entries)).toBe(expectedChecksum(files));
    }
  });

  it("sorts names by UTF-8 bytes, as Go does, not by UTF-16 units", () => {
    // U+FF5E sorts after U+1F600 in UTF-16 units but before it in UTF-8 bytes.
    const entries = [
      { name: "\u{1F600}.txt", data: Buffer.from("a") },
      { name: "\uFF5E.txt", data: Buffer.from("b") },
    ];
    const joined = Buffer.concat([sha256("\uFF5E.txt"), sha256("b"), sha256("\u{1F600}.txt"), sha256("a")]);
    expect(packageChecksum(entries)).toBe(sha256(joined).toString("hex"));
  });

  it("accepts and hashes a package just under the default 50 MiB limit in reasonable time", async () => {
    const files: Record<string, Uint8Array> = { "manifest.yaml": Buffer.from("m") };
    for (let i = 0; i < 45; i += 1) files[`data/${i}.bin`] = Buffer.alloc(1024 * 1024, i);
    const started = Date.now();
    const archive = await readPackage(await buildPackage(files), DEFAULT_PACKAGE_LIMITS);
    expect(packageChecksum(archive.entries)).toMatch(/^[0-9a-f]{64}$/);
    expect(Date.now() - started).toBeLessThan(15_000);
  });
});
