/**
 * Turns package bytes into a stored, verified package: read the archive safely, resolve the
 * declaration, compute the identifier like upstream, check the signature, extract assets.
 * Used by uploads, bundle uploads and marketplace/GitHub downloads alike.
 *
 * The zip reader and the YAML parser are loaded on the first package read: most handlers
 * (dispatch, endpoints, backwards invocations) never read one and do not load them.
 */

import { packageBlobKey } from "../domain/blob-keys.js";
import { packageChecksum } from "../domain/checksum.js";
import { badRequest } from "../domain/errors.js";
import {
  formatUniqueIdentifier,
  identifierParts,
  isRemoteLike,
  type PluginUniqueIdentifier,
} from "../domain/identifier.js";
import type { PluginDeclaration } from "../domain/manifest.js";
import type { PackageArchive, PackageLimits } from "../domain/package-archive.js";
import { extractAssets, type PluginAsset } from "../domain/plugin-assets.js";
import { type Verification, verifyPackageSignature } from "../domain/signature.js";
import type { PackageRecord, PackageRecords } from "../stores/package-records.js";

export interface DecodedPackage {
  unique_identifier: PluginUniqueIdentifier;
  manifest: PluginDeclaration;
  verification: Verification | null;
}

export interface PreparedPackage {
  record: PackageRecord;
  bytes: Uint8Array;
  assets: PluginAsset[];
  decoded: DecodedPackage;
}

export interface PackageIntakeOptions {
  limits: PackageLimits;
  forceVerifyingSignature: boolean;
  extraPublicKeysPem: readonly string[];
}

export class PackageIntake {
  constructor(
    private readonly packages: PackageRecords,
    private readonly options: PackageIntakeOptions,
  ) {}

  /** Decodes, verifies and stores a package. `verifySignature` forces verification for this call. */
  async accept(bytes: Uint8Array, verifySignature: boolean, expectedIdentifier?: string): Promise<DecodedPackage> {
    const prepared = await this.prepare(bytes, verifySignature, expectedIdentifier);
    await this.persist(prepared);
    return prepared.decoded;
  }

  /** Everything `accept` checks, without storing anything (bundles store only when all packages pass). */
  async prepare(bytes: Uint8Array, verifySignature: boolean, expectedIdentifier?: string): Promise<PreparedPackage> {
    if (bytes.byteLength > this.options.limits.maxPackageBytes) throw badRequest("file size exceeds the maximum limit");
    const archive = await this.read(bytes);
    const { loadDeclaration } = await import("../domain/declaration.js");
    const declaration = loadDeclaration(
      (path) => archive.file(path),
      archive.entries.map((e) => e.name),
    );
    const uniqueIdentifier = formatUniqueIdentifier({
      author: declaration.author || undefined,
      name: declaration.name,
      version: declaration.version,
      checksum: packageChecksum(archive.entries),
    });
    if (isRemoteLike(uniqueIdentifier)) throw badRequest("cannot set author to an UUID");
    if (expectedIdentifier !== undefined && expectedIdentifier !== uniqueIdentifier) {
      throw badRequest(`downloaded package is ${uniqueIdentifier}, expected ${expectedIdentifier}`);
    }
    const signature = this.checkSignature(archive, verifySignature);
    const { declaration: withAssets, assets } = extractAssets(
      { ...declaration, verified: signature.verified },
      (path) => archive.file(path),
    );
    const record: PackageRecord = {
      unique_identifier: uniqueIdentifier,
      plugin_id: identifierParts(uniqueIdentifier).pluginId,
      declaration: withAssets,
      verified: signature.verified,
      verification: signature.verification,
      package_key: packageBlobKey(uniqueIdentifier),
      created_at: new Date().toISOString(),
    };
    return {
      record,
      bytes,
      assets,
      decoded: { unique_identifier: uniqueIdentifier, manifest: withAssets, verification: signature.verification },
    };
  }

  persist(prepared: PreparedPackage): Promise<void> {
    return this.packages.save(prepared.record, prepared.bytes, prepared.assets);
  }

  /**
   * Decodes a stored package again and re-checks its signature (decode/from_identifier,
   * /v2/invoke/extract): the manifest as the package declares it, icons not remapped to asset
   * ids, as upstream's zip decoder returns it (internal/service/decode_service.go).
   */
  async decodeStored(uniqueIdentifier: PluginUniqueIdentifier): Promise<DecodedPackage> {
    const bytes = await this.packages.bytes(uniqueIdentifier);
    if (!bytes) throw badRequest("plugin package not found");
    const archive = await this.read(bytes);
    const { loadDeclaration } = await import("../domain/declaration.js");
    const declaration = loadDeclaration(
      (path) => archive.file(path),
      archive.entries.map((e) => e.name),
    );
    const signature = verifyPackageSignature(archive, this.options.extraPublicKeysPem);
    return {
      unique_identifier: uniqueIdentifier,
      manifest: { ...declaration, verified: signature.verified },
      verification: signature.verification,
    };
  }

  async archiveOf(uniqueIdentifier: PluginUniqueIdentifier): Promise<PackageArchive> {
    const bytes = await this.packages.bytes(uniqueIdentifier);
    if (!bytes) throw badRequest("plugin package not found");
    return this.read(bytes);
  }

  private async read(bytes: Uint8Array): Promise<PackageArchive> {
    const { readPackage } = await import("../domain/package-archive.js");
    return readPackage(bytes, this.options.limits);
  }

  private checkSignature(archive: PackageArchive, verifySignature: boolean) {
    const signature = verifyPackageSignature(archive, this.options.extraPublicKeysPem);
    if ((this.options.forceVerifyingSignature || verifySignature) && !signature.verified) {
      throw badRequest("plugin verification has been enabled, and the plugin you want to install has a bad signature");
    }
    return signature;
  }
}
