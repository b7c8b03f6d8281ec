/**
 * Bundle uploads: lists the bundle's dependencies the way Dify shows them, and stores the
 * packages it carries — all of them or none, so a bad package leaves nothing behind.
 */
import { badRequest } from "../domain/errors.js";
import type { PackageLimits } from "../domain/package-archive.js";
import type { PackageIntake, PreparedPackage } from "./package-intake.js";

export interface BundleIntakeOptions {
  limits: PackageLimits;
  /** A package by author langgenius must carry Langgenius's own verification (upstream's rule for bundles). */
  enforceLanggeniusSignatures: boolean;
}

export class BundleIntake {
  constructor(
    private readonly intake: PackageIntake,
    private readonly options: BundleIntakeOptions,
  ) {}

  async accept(bytes: Uint8Array, verifySignature: boolean): Promise<unknown[]> {
    if (bytes.byteLength > this.options.limits.maxPackageBytes) throw badRequest("file size exceeds the maximum limit");
    // Loaded on first use, as in PackageIntake: only bundle uploads need the zip reader and the YAML parser.
    const [{ readPackage }, { githubDependencyValue, marketplaceDependencyValue, parseBundleManifest }] =
      await Promise.all([import("../domain/package-archive.js"), import("../domain/bundle.js")]);
    const archive = await readPackage(bytes, this.options.limits);
    const manifest = archive.file("manifest.yaml");
    if (!manifest) throw badRequest("failed to load bundle manifest: manifest.yaml not found");
    const bundle = parseBundleManifest(Buffer.from(manifest).toString("utf8"));
    const result: unknown[] = [];
    const prepared: PreparedPackage[] = [];
    for (const dependency of bundle.dependencies) {
      switch (dependency.type) {
        case "github":
          result.push({ type: "github", value: githubDependencyValue(dependency.value.repo_pattern) });
          break;
        case "marketplace":
          result.push({ type: "marketplace", value: marketplaceDependencyValue(dependency.value.marketplace_pattern) });
          break;
        case "package": {
          const pkg = archive.file(`_assets/${dependency.value.path}`);
          if (!pkg) throw badRequest(`failed to fetch package from bundle: ${dependency.value.path} not found`);
          const one = await this.intake.prepare(pkg, verifySignature);
          if (this.options.enforceLanggeniusSignatures && isUnauthorizedLanggenius(one)) {
            throw badRequest("plugin with author langgenius is not authorized by langgenius");
          }
          prepared.push(one);
          result.push({
            type: "package",
            value: { unique_identifier: one.decoded.unique_identifier, manifest: one.decoded.manifest },
          });
          break;
        }
      }
    }
    for (const one of prepared) await this.intake.persist(one);
    return result;
  }
}

const isUnauthorizedLanggenius = (p: PreparedPackage) =>
  p.record.declaration.author === "langgenius" && p.record.verification?.authorized_category !== "langgenius";
