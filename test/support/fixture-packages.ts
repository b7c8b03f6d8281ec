/** Packs the fixture plugins under test/fixtures/plugins into .difypkg bytes for tests. */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { type BuildPackageOptions, buildPackage } from "./package-builder.js";

export const fixturesDir = fileURLToPath(new URL("../fixtures/plugins", import.meta.url));

function collect(root: string, dir: string, out: Record<string, Uint8Array>): void {
  for (const name of readdirSync(dir)) {
    if (name === ".venv" || name === "__pycache__" || name.endsWith(".pyc")) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) collect(root, path, out);
    else out[relative(root, path)] = readFileSync(path);
  }
}

export interface FixtureChanges {
  /** Replaces `version: x.y.z` at the top of manifest.yaml. */
  version?: string;
  /** Extra or replaced files. */
  files?: Record<string, string | Uint8Array>;
}

export async function packFixture(
  name: string,
  changes: FixtureChanges = {},
  options: BuildPackageOptions = {},
): Promise<Uint8Array> {
  const files: Record<string, Uint8Array | string> = {};
  collect(join(fixturesDir, name), join(fixturesDir, name), files as Record<string, Uint8Array>);
  if (changes.version) {
    const manifest = Buffer.from(files["manifest.yaml"] as Uint8Array).toString("utf8");
    files["manifest.yaml"] = manifest.replace(/^version: .*$/m, `version: ${changes.version}`);
  }
  Object.assign(files, changes.files ?? {});
  return buildPackage(files, options);
}
