/**
 * `verify <file>`: checks a .difypkg as the daemon would on upload, without a daemon: archive
 * limits, manifest and declaration, its unique identifier, and its signature (Langgenius's key
 * and any --public-key). Exit status 1 when the package is unusable, or unsigned with
 * --require-signature.
 */
import { readFile } from "node:fs/promises";
import { Command } from "commander";
import { DEFAULT_PACKAGE_LIMITS } from "../../domain/package-archive.js";
import { PackageIntake } from "../../services/package-intake.js";
import type { PackageRecords } from "../../stores/package-records.js";
import { print, runCommand } from "../daemon-client.js";

interface VerifyOptions {
  publicKey: string[];
  requireSignature?: boolean;
  json?: boolean;
}

export function verifyCommand(): Command {
  return new Command("verify")
    .description("check a .difypkg: manifest, unique identifier and signature, as an upload would")
    .argument("<file>", "the .difypkg")
    .option(
      "--public-key <pem>",
      "also trust this RSA public key (repeatable)",
      (v: string, all: string[]) => [...all, v],
      [] as string[],
    )
    .option("--require-signature", "fail when the package has no valid signature")
    .option("--json", "print JSON instead of text")
    .action(async (file: string, o: VerifyOptions) =>
      runCommand(o.json, async () => {
        const bytes = await readFile(file);
        const extraPublicKeysPem = await Promise.all(o.publicKey.map((p) => readFile(p, "utf8")));
        // Decoding only: nothing is stored, so no package records are needed.
        const intake = new PackageIntake(undefined as unknown as PackageRecords, {
          limits: DEFAULT_PACKAGE_LIMITS,
          forceVerifyingSignature: false,
          extraPublicKeysPem,
        });
        const { decoded } = await intake.prepare(bytes, false);
        const signed = decoded.verification !== null;
        const result = {
          file,
          unique_identifier: decoded.unique_identifier,
          name: decoded.manifest.name,
          version: decoded.manifest.version,
          author: decoded.manifest.author,
          signature: signed ? "verified" : "none or invalid",
          authorized_category: decoded.verification?.authorized_category ?? null,
        };
        if (o.json) print(JSON.stringify(result, null, 2));
        else {
          print(`${file}: a valid plugin package`);
          for (const [k, v] of Object.entries(result).slice(1)) print(`  ${k}: ${v ?? "-"}`);
        }
        return o.requireSignature && !signed ? 1 : 0;
      }),
    );
}
