/**
 * Plugin bundles (.difybundle): a zip whose manifest.yaml (type: bundle) lists dependencies
 * on GitHub releases, marketplace plugins, or packages carried in the bundle's _assets/.
 */
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { badRequest } from "./errors.js";

const i18n = z.object({ en_US: z.string() }).catchall(z.string());

const dependencySchema = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("github"),
    value: z.object({ repo_pattern: z.string().regex(/^[a-z0-9_-]{1,64}\/[a-z0-9_-]{1,128}:[^/]+\/[^/]+$/) }),
  }),
  z.object({
    type: z.literal("marketplace"),
    value: z.object({ marketplace_pattern: z.string().regex(/^[a-z0-9_-]{1,64}\/[a-z0-9_-]{1,128}:.+$/) }),
  }),
  z.object({ type: z.literal("package"), value: z.object({ path: z.string().min(1) }) }),
]);

const bundleManifestSchema = z.object({
  name: z.string().min(1),
  labels: i18n,
  description: i18n,
  icon: z.string().min(1),
  version: z.string().min(1),
  author: z.string().min(1),
  type: z.literal("bundle"),
  dependencies: z.array(dependencySchema),
  tags: z.array(z.string()).nullish(),
});

export type BundleManifest = z.infer<typeof bundleManifestSchema>;
export type BundleDependency = BundleManifest["dependencies"][number];

export function parseBundleManifest(text: string): BundleManifest {
  let yaml: unknown;
  try {
    yaml = parseYaml(text);
  } catch (err) {
    throw badRequest(`failed to load bundle manifest: ${(err as Error).message}`);
  }
  const parsed = bundleManifestSchema.safeParse(yaml);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw badRequest(`failed to load bundle manifest: manifest.yaml: ${issue?.path.join(".")}: ${issue?.message}`);
  }
  return parsed.data;
}

/** `org/repo:release/asset` → the parts Dify shows for a GitHub dependency. */
export function githubDependencyValue(pattern: string) {
  const [org = "", repo = "", release = "", asset = ""] = pattern.split(":").flatMap((s) => s.split("/"));
  return { repo_address: `https://github.com/${org}/${repo}`, repo: `${org}/${repo}`, release, packages: asset };
}

/** `org/plugin:version` → organization, plugin, version. */
export function marketplaceDependencyValue(pattern: string) {
  const [organization = "", plugin = "", version = ""] = pattern.split(":").flatMap((s) => s.split("/"));
  return { organization, plugin, version };
}
