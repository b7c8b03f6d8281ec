/**
 * Manual check of a .difypkg: prints its unique identifier, whether its signature verifies, and
 * the signer's category — handy for comparing against real marketplace packages.
 *
 *   npx tsx scripts/verify-package.ts <package.difypkg> [--public-key <pem file>]...
 */
import { readFile } from "node:fs/promises";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { packageChecksum } from "../src/domain/checksum.js";
import { DaemonError } from "../src/domain/errors.js";
import { formatUniqueIdentifier } from "../src/domain/identifier.js";
import { DEFAULT_PACKAGE_LIMITS, readPackage } from "../src/domain/package-archive.js";
import { verifyPackageSignature } from "../src/domain/signature.js";

// Only the fields that make up the identifier; full manifest validation lives elsewhere.
const ManifestIdentity = z.object({
  author: z.string().optional(),
  name: z.string(),
  version: z.string(),
});

function parseArgs(argv: readonly string[]): { packagePath: string; keyPaths: string[] } {
  const keyPaths: string[] = [];
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i]!;
    if (arg === "--public-key") {
      const value = argv[i + 1];
      if (!value) throw new Error("--public-key needs a file path");
      keyPaths.push(value);
      i += 1;
    } else {
      positional.push(arg);
    }
  }
  if (positional.length !== 1) {
    throw new Error("usage: verify-package <package.difypkg> [--public-key <pem file>]...");
  }
  return { packagePath: positional[0]!, keyPaths };
}

async function main(): Promise<void> {
  const { packagePath, keyPaths } = parseArgs(process.argv.slice(2));
  const archive = await readPackage(await readFile(packagePath), DEFAULT_PACKAGE_LIMITS);
  const extraKeys = await Promise.all(keyPaths.map((path) => readFile(path, "utf8")));

  const manifestBytes = archive.file("manifest.yaml");
  if (!manifestBytes) throw new Error("manifest.yaml not found in package");
  const manifest = ManifestIdentity.parse(parseYaml(Buffer.from(manifestBytes).toString("utf8")));
  const checksum = packageChecksum(archive.entries);
  const identifier = formatUniqueIdentifier({
    ...(manifest.author ? { author: manifest.author } : {}),
    name: manifest.name,
    version: manifest.version,
    checksum,
  });
  const check = verifyPackageSignature(archive, extraKeys);

  console.log(`identifier: ${identifier}`);
  console.log(`verified:   ${check.verified}`);
  console.log(`category:   ${check.verification?.authorized_category ?? "-"}`);
  console.log(`entries:    ${archive.entries.length}`);
}

main().catch((err: unknown) => {
  const message = err instanceof DaemonError ? `${err.errorType}: ${err.message}` : String(err);
  console.error(message);
  process.exitCode = 1;
});
