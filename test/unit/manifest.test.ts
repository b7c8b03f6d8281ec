import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { loadDeclaration } from "../../src/domain/declaration.js";
import {
  canonicalDecimal,
  canonicalTimestamp,
  manifestSchema,
  modelSchema,
  parameterRuleSchema,
  pluginDeclarationSchema,
  toolProviderSchema,
} from "../../src/domain/manifest.js";

const CASES = fileURLToPath(new URL("../fixtures/plugins/manifest-cases/", import.meta.url));

function loadFixture(name: string) {
  const root = join(CASES, name);
  const paths: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir).sort()) {
      const path = join(dir, entry);
      if (statSync(path).isDirectory()) walk(path);
      else paths.push(relative(root, path));
    }
  };
  walk(root);
  const read = (path: string) => (paths.includes(path) ? new Uint8Array(readFileSync(join(root, path))) : undefined);
  return loadDeclaration(read, paths);
}

/** A manifest.yaml as parsed YAML, valid unless a test changes it. */
function manifest(changes: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    version: "0.0.1",
    type: "plugin",
    author: "fixtures",
    name: "sample",
    label: { en_US: "Sample" },
    description: { en_US: "A sample plugin." },
    icon: "icon.svg",
    resource: { memory: 1048576 },
    plugins: { tools: ["provider/sample.yaml"] },
    meta: { version: "0.0.1", arch: ["amd64"], runner: { language: "python", version: "3.12", entrypoint: "main" } },
    created_at: "2025-01-01T00:00:00Z",
    ...changes,
  };
}

function issues(value: unknown): string[] {
  const result = manifestSchema.safeParse(value);
  return result.success ? [] : result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
}

describe("pluginDeclarationSchema", () => {
  it.each(["tool-plugin", "model-provider", "endpoint-plugin"])(
    "gives a stored %s declaration back unchanged",
    (name) => {
      const stored = JSON.parse(JSON.stringify(loadFixture(name)));
      expect(pluginDeclarationSchema.parse(stored)).toEqual(stored);
    },
  );

  it("rejects a stored declaration whose fields break the manifest rules", () => {
    const stored = JSON.parse(JSON.stringify(loadFixture("tool-plugin")));
    expect(pluginDeclarationSchema.safeParse({ ...stored, name: "Weather Kit" }).success).toBe(false);
    expect(pluginDeclarationSchema.safeParse({ ...stored, verified: "yes please" }).success).toBe(false);
  });
});

describe("manifestSchema", () => {
  it("accepts a minimal manifest and fills empty lists", () => {
    const parsed = manifestSchema.parse(manifest());
    expect(parsed.tags).toEqual([]);
    expect(parsed.plugins).toEqual({
      tools: ["provider/sample.yaml"],
      models: [],
      endpoints: [],
      agent_strategies: [],
      datasources: [],
      triggers: [],
    });
  });

  it("keeps fields it does not model", () => {
    expect(manifestSchema.parse(manifest({ homepage: "https://example.com" }))).toHaveProperty(
      "homepage",
      "https://example.com",
    );
  });

  it.each([
    ["version with two parts", { version: "1.0" }, "version"],
    ["version with five-digit part", { version: "10000.0.0" }, "version"],
    ["type other than plugin", { type: "bundle" }, "type"],
    ["uppercase author", { author: "Fixtures" }, "author"],
    ["empty author", { author: "" }, "author"],
    ["name with spaces", { name: "my plugin" }, "name"],
    ["label without en_US", { label: { zh_Hans: "样例" } }, "label.en_US"],
    ["empty en_US description", { description: { en_US: "" } }, "description.en_US"],
    ["en_US longer than 1023 characters", { description: { en_US: "x".repeat(1024) } }, "description.en_US"],
    ["icon path over 128 characters", { icon: `${"a".repeat(125)}.svg` }, "icon"],
    ["zero memory", { resource: { memory: 0 } }, "resource.memory"],
    ["fractional memory", { resource: { memory: 1.5 } }, "resource.memory"],
    [
      "storage under 1 KiB",
      { resource: { memory: 1, permission: { storage: { enabled: true, size: 10 } } } },
      "resource.permission.storage.size",
    ],
    ["unknown arch", { meta: { ...(manifest().meta as object), arch: ["riscv64"] } }, "meta.arch.0"],
    ["tag outside the list", { tags: ["utilities", "games"] }, "tags.1"],
    ["created_at that is not a time", { created_at: "yesterday" }, "created_at"],
    ["repo that is not a URL", { repo: "not a url" }, "repo"],
    ["provider file path over 128 characters", { plugins: { tools: [`${"p".repeat(124)}.yaml`] } }, "plugins.tools.0"],
  ])("rejects a %s", (_, changes, path) => {
    expect(issues(manifest(changes)).map((i) => i.split(":")[0])).toContain(path);
  });

  it("requires the runner and the manifest schema version", () => {
    const runner = { language: "python", version: "3.12", entrypoint: "main" };
    const paths = (meta: object) => issues(manifest({ meta })).map((i) => i.split(":")[0]);
    expect(paths({ version: "0.0.1", arch: ["amd64"] })).toContain("meta.runner");
    expect(paths({ arch: ["amd64"], runner })).toContain("meta.version");
  });

  it("accepts every upstream tag and version suffix", () => {
    const tags = [
      "search",
      "image",
      "videos",
      "weather",
      "finance",
      "design",
      "travel",
      "social",
      "news",
      "medical",
      "productivity",
      "education",
      "business",
      "entertainment",
      "utilities",
      "agent",
      "rag",
      "other",
      "trigger",
    ];
    expect(issues(manifest({ tags, version: "1.2.3-beta_1" }))).toEqual([]);
  });
});

describe("canonicalTimestamp", () => {
  it.each([
    ["2024-09-20T08:03:44.658609186Z", "2024-09-20T08:03:44.658609186Z"],
    ["2024-12-17T11:05:59.151918+08:00", "2024-12-17T11:05:59.151918+08:00"],
    ["2025-03-01T09:30:00.500+00:00", "2025-03-01T09:30:00.5Z"],
    ["2025-03-01T09:30:00.000Z", "2025-03-01T09:30:00Z"],
    ["2025-3-1 9:05:07", "2025-03-01T09:05:07Z"],
    ["2025-02-03", "2025-02-03T00:00:00Z"],
  ])("prints %s as %s", (input, expected) => {
    expect(canonicalTimestamp(input)).toBe(expected);
  });

  it.each(["yesterday", "2025-13-01", "2025-01-01T25:00:00Z", ""])("rejects %j", (input) => {
    expect(canonicalTimestamp(input)).toBeUndefined();
  });
});

describe("canonicalDecimal", () => {
  it.each([
    ["0.60", "0.6"],
    ["2.00", "2"],
    ["1e-6", "0.000001"],
    ["1.5E3", "1500"],
    ["-0.0", "0"],
    ["007.10", "7.1"],
    [".5", "0.5"],
  ])("prints %s as %s", (input, expected) => {
    expect(canonicalDecimal(input)).toBe(expected);
  });

  it.each(["", ".", "abc", "1.2.3"])("rejects %j", (input) => {
    expect(canonicalDecimal(input)).toBeUndefined();
  });
});

describe("parameterRuleSchema", () => {
  it("lets the rule override what the template sets", () => {
    expect(
      parameterRuleSchema.parse({ name: "top_p", use_template: "top_p", max: 0.9, label: { en_US: "Top P" } }),
    ).toEqual({
      name: "top_p",
      use_template: "top_p",
      label: { en_US: "Top P" },
      type: "float",
      // upstream's four-language help text, word for word
      help: {
        en_US:
          "Controls diversity via nucleus sampling: 0.5 means half of all likelihood-weighted options are considered.",
        zh_Hans: "通过核心采样控制多样性：0.5表示考虑了一半的所有可能性加权选项。",
        ja_JP: "核サンプリングを通じて多様性を制御します：0.5は、すべての可能性加权オプションの半分を考慮します。",
        pt_BR:
          "Controla a diversidade via amostragem de núcleo: 0.5 significa que metade das opções com maior probabilidade são consideradas.",
      },
      required: false,
      default: 1,
      min: 0,
      max: 0.9,
      precision: 2,
      options: [],
    });
  });

  it("needs a type when there is no template", () => {
    const result = parameterRuleSchema.safeParse({ name: "seed" });
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]).toMatchObject({
      path: ["type"],
      message: "is required when use_template is not set",
    });
  });
});

describe("provider shapes", () => {
  it("takes credentials written as a list as they are", () => {
    const provider = toolProviderSchema.parse({
      identity: { author: "a", name: "p", label: { en_US: "P" }, icon: "i.svg" },
      credentials_schema: [{ name: "key", type: "secret-input", label: { en_US: "Key" } }],
    });
    expect(provider.credentials_schema).toEqual([{ name: "key", type: "secret-input", label: { en_US: "Key" } }]);
    expect(provider.tools).toEqual([]);
    expect(provider.identity.tags).toEqual([]);
  });

  it("prefers credentials_schema over the older credentials_for_provider", () => {
    const provider = toolProviderSchema.parse({
      identity: { author: "a", name: "p", label: { en_US: "P" }, icon: "i.svg" },
      credentials_schema: { token: { type: "secret-input", label: { en_US: "Token" } } },
      credentials_for_provider: { ignored: { type: "text-input", label: { en_US: "Ignored" } } },
    });
    expect(provider.credentials_schema.map((c) => c.name)).toEqual(["token"]);
  });

  it("rejects a provider identity name with characters Dify cannot route", () => {
    expect(
      toolProviderSchema.safeParse({
        identity: { author: "a", name: "my provider", label: { en_US: "P" }, icon: "i.svg" },
      }).success,
    ).toBe(false);
  });

  it("keeps a model's English label when written", () => {
    expect(modelSchema.parse({ model: "m-1", model_type: "llm", label: { en_US: "Model One" } }).label).toEqual({
      en_US: "Model One",
    });
  });
});
