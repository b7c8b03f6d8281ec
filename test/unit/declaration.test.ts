import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { loadDeclaration, loadManifest } from "../../src/domain/declaration.js";
import {
  declarationCategory,
  memoryBytesOf,
  permissionsOf,
  providerNames,
  runnerOf,
} from "../../src/domain/declaration-facts.js";
import { DaemonError } from "../../src/domain/errors.js";
import { extractAssets } from "../../src/domain/plugin-assets.js";

const CASES = fileURLToPath(new URL("../fixtures/plugins/manifest-cases/", import.meta.url));

/** A fixture plugin as a package: its files in path order, with optional replacements (null deletes). */
function fixture(name: string, changes: Record<string, string | null> = {}) {
  const root = join(CASES, name);
  const files = new Map<string, Uint8Array>();
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir).sort()) {
      const path = join(dir, entry);
      if (statSync(path).isDirectory()) walk(path);
      else files.set(relative(root, path), new Uint8Array(readFileSync(path)));
    }
  };
  walk(root);
  for (const [path, text] of Object.entries(changes)) {
    if (text === null) files.delete(path);
    else files.set(path, new TextEncoder().encode(text));
  }
  return { read: (path: string) => files.get(path), paths: [...files.keys()] };
}

function load(name: string, changes?: Record<string, string | null>) {
  const { read, paths } = fixture(name, changes);
  return loadDeclaration(read, paths);
}

function loadError(name: string, changes?: Record<string, string | null>): DaemonError {
  try {
    load(name, changes);
  } catch (err) {
    expect(err).toBeInstanceOf(DaemonError);
    return err as DaemonError;
  }
  throw new Error(`${name} loaded without error`);
}

function manifestOf(name: string): string {
  return readFileSync(join(CASES, name, "manifest.yaml"), "utf8");
}

describe("loadDeclaration: a tool plugin", () => {
  const d = load("tool-plugin");

  it("keeps the manifest fields and marks the declaration unverified", () => {
    expect(d).toMatchObject({
      version: "1.2.0",
      type: "plugin",
      author: "fixtures",
      name: "weather_kit",
      label: { en_US: "Weather Kit", zh_Hans: "天气工具包" },
      icon: "sun.svg",
      icon_dark: "sun-dark.svg",
      tags: ["weather", "utilities"],
      repo: "https://example.com/fixtures/weather-kit",
      verified: false,
    });
    expect(d.plugins).toEqual({
      tools: ["provider/weather.yaml"],
      models: [],
      endpoints: [],
      agent_strategies: [],
      datasources: [],
      triggers: [],
    });
  });

  it("keeps the written text of an unquoted runner version and prints created_at the way Go does", () => {
    expect(runnerOf(d)).toEqual({ language: "python", version: "3.10", entrypoint: "main" });
    expect(d.meta.minimum_dify_version).toBe("1.5.0");
    expect(d.created_at).toBe("2025-03-01T09:30:00.5Z");
  });

  it("fills in each tool file listed by the provider, in order", () => {
    expect(d.tool?.tools.map((t) => t.identity.name)).toEqual(["forecast", "alerts"]);
    expect(d.tool?.tools[0]?.description).toEqual({
      human: { en_US: "Daily forecast for a city." },
      llm: "Returns the forecast for the next days in a city.",
    });
  });

  it("turns a credentials mapping (under its older name) into a named list", () => {
    expect(d.tool?.credentials_schema).toEqual([
      {
        name: "api_key",
        type: "secret-input",
        required: true,
        label: { en_US: "API key" },
        placeholder: { en_US: "Paste the key from your weather account" },
      },
    ]);
    expect(d.tool).not.toHaveProperty("credentials_for_provider");
  });

  it("gives the provider the plugin's description and tags when it has none", () => {
    expect(d.tool?.identity.description).toEqual({ en_US: "Forecasts and alerts for a city." });
    expect(d.tool?.identity.tags).toEqual(["weather", "utilities"]);
  });

  it("reads unquoted numbers as text in string fields and as numbers elsewhere", () => {
    const days = d.tool?.tools[0]?.parameters[1];
    expect(days?.options?.map((o) => o.value)).toEqual(["1.0", "3"]);
    expect(days?.default).toBe(3);
    const radius = d.tool?.tools[1]?.parameters[1];
    expect(radius?.default).toBe(2.5);
    expect(radius?.min).toBe(0.5);
  });

  it("keeps fields it does not model, such as the Python source hints", () => {
    expect(d.tool?.extra).toEqual({ python: { source: "provider/weather.py" } });
    expect(d.tool?.tools[1]?.extra).toEqual({ python: { source: "tools/alerts.py" } });
  });

  it("is listed as a tool plugin under the provider's identity name", () => {
    expect(declarationCategory(d)).toBe("tool");
    expect(providerNames(d)).toEqual({ tool: "weather" });
  });

  it("reports memory and permissions, a model type only when models are enabled", () => {
    expect(memoryBytesOf(d)).toBe(268435456);
    const permissions = permissionsOf(d);
    expect(permissions.tool.enabled).toBe(true);
    expect(permissions.model).toMatchObject({ enabled: false, llm: false });
    expect(permissions.storage).toEqual({ enabled: true, size: 1048576 });
    expect(permissions.endpoint.enabled).toBe(false);
    expect(permissions.app.enabled).toBe(false);
  });
});

describe("loadDeclaration: a model provider", () => {
  const d = load("model-provider");
  const model = d.model!;

  it("reads the position file of each model type", () => {
    expect(model.position).toEqual({ llm: ["acme-large", "acme-small"] });
  });

  it("loads the models matched by the predefined globs, skipping position files", () => {
    expect(model.models.map((m) => [m.model, m.model_type])).toEqual([
      ["acme-large", "llm"],
      ["acme-small", "llm"],
      ["acme-embed", "text-embedding"],
    ]);
  });

  it("expands parameter templates; a rule's label is its name unless written", () => {
    const [temperature, maxTokens, format, reasoning] = model.models[0]!.parameter_rules;
    expect(temperature).toMatchObject({
      name: "temperature",
      label: { en_US: "temperature" },
      type: "float",
      default: 0,
      min: 0,
      max: 1,
      precision: 2,
      options: [],
    });
    expect(maxTokens).toMatchObject({ type: "int", default: 1024, min: 1, max: 8192, precision: 0 });
    expect(format).toMatchObject({ type: "string", options: ["JSON", "XML"] });
    expect(reasoning).toEqual({
      name: "reasoning",
      label: { en_US: "Reasoning effort" },
      type: "string",
      required: false,
      options: ["low", "high"],
    });
  });

  it("fills model defaults: fetch_from, parameter rules, and a label from the model id", () => {
    const embed = model.models[2]!;
    expect(embed.fetch_from).toBe("predefined-model");
    expect(embed.parameter_rules).toEqual([]);
    expect(model.models[1]!.label).toEqual({ en_US: "acme-small" });
    expect(embed.model_properties).toEqual({ context_size: 8192, max_chunks: 32 });
  });

  it("sends prices as canonical decimal strings", () => {
    expect(model.models[0]!.pricing).toEqual({ input: "0.5", output: "2", unit: "0.000001", currency: "USD" });
  });

  it("defaults list fields of credential forms and keeps a default's written text", () => {
    const [key, region] = model.provider_credential_schema!.credential_form_schemas;
    expect(key).toMatchObject({ variable: "acme_api_key", options: [], show_on: [] });
    expect(region).toMatchObject({
      default: "1.0",
      options: [{ value: "eu", label: { en_US: "Europe" }, show_on: [] }],
    });
  });

  it("gives the provider the plugin's description when it has none", () => {
    expect(model.description).toEqual({ en_US: "Language and embedding models from Acme." });
  });

  it("is listed as a model plugin under its provider name", () => {
    expect(declarationCategory(d)).toBe("model");
    expect(providerNames(d)).toEqual({ model: "acme" });
  });

  it("accepts models written inline instead of as files", () => {
    const inline = load("model-provider", {
      "provider/acme.yaml": [
        "provider: acme",
        "label: {en_US: Acme}",
        "supported_model_types: [llm]",
        "configurate_methods: [customizable-model]",
        "models:",
        "  - {model: inline-one, model_type: llm}",
      ].join("\n"),
    });
    expect(inline.model?.models.map((m) => m.model)).toEqual(["inline-one"]);
    expect(inline.model?.position).toBeUndefined();
  });

  it("needs the package's file list to expand model globs", () => {
    const { read } = fixture("model-provider");
    expect(() => loadDeclaration(read)).toThrow(
      /provider\/acme\.yaml: model file patterns need the package's file list/,
    );
  });
});

describe("loadDeclaration: an endpoint plugin", () => {
  const d = load("endpoint-plugin");

  it("fills in the endpoint files listed by the group", () => {
    expect(d.endpoint?.endpoints).toEqual([
      { path: "/echo", method: "POST", extra: { python: { source: "endpoints/echo.py" } } },
      { path: "/status/{name}", method: "GET", hidden: true, extra: { python: { source: "endpoints/status.py" } } },
    ]);
    expect(d.endpoint?.settings.map((s) => s.name)).toEqual(["greeting", "app"]);
  });

  it("is an extension with an endpoint and the permission to register it", () => {
    expect(declarationCategory(d)).toBe("extension");
    expect(providerNames(d)).toEqual({ endpoint: true });
    expect(permissionsOf(d).endpoint.enabled).toBe(true);
    expect(permissionsOf(d).app.enabled).toBe(true);
    expect(permissionsOf(d).storage).toEqual({ enabled: false, size: 0 });
  });

  it("reads a bare date as midnight UTC", () => {
    expect(d.created_at).toBe("2025-02-03T00:00:00Z");
  });
});

describe("loadDeclaration: rejected packages", () => {
  it("needs a manifest", () => {
    const err = loadError("missing-manifest");
    expect(err.message).toBe("manifest.yaml not found");
    expect(err.errorType).toBe("PluginDaemonBadRequestError");
  });

  it("names the field of a bad version", () => {
    expect(loadError("bad-version").message).toBe("manifest.yaml: version: must be a version like 1.2.3");
  });

  it("accepts only python runners", () => {
    expect(loadError("unknown-runner").message).toBe('manifest.yaml: meta.runner.language: expected "python"');
  });

  it("names the file that is missing and where it was referenced", () => {
    expect(loadError("missing-file").message).toBe("provider/tools.yaml: tools[1]: file tools/absent.yaml not found");
  });

  it("names the manifest entry of a missing provider file", () => {
    const err = loadError("missing-file", { "provider/tools.yaml": null });
    expect(err.message).toBe("manifest.yaml: plugins.tools[0]: file provider/tools.yaml not found");
  });

  it("does not let a model provider share a plugin with tools", () => {
    expect(loadError("model-and-tool").message).toBe("manifest.yaml: plugins: models cannot be combined with tools");
  });

  it("reports YAML syntax errors with the file and line", () => {
    expect(loadError("yaml-syntax").message).toMatch(/^provider\/tools\.yaml: invalid YAML: .*line 5, column 3$/);
  });

  it("needs at least one provider", () => {
    const manifest = manifestOf("bad-version")
      .replace("version: 1.0", "version: 1.0.0")
      .replace(/plugins:\n {2}tools:\n.*\n/, "plugins: {}\n");
    expect(loadError("bad-version", { "manifest.yaml": manifest }).message).toMatch(
      /^manifest\.yaml: plugins: declare at least one of tools, models/,
    );
  });

  it("rejects tags outside upstream's list", () => {
    const manifest = `${manifestOf("endpoint-plugin")}tags: [search, gaming]\n`;
    expect(loadError("endpoint-plugin", { "manifest.yaml": manifest }).message).toMatch(
      /^manifest\.yaml: tags\[1\]: expected one of/,
    );
  });

  it("rejects an unknown parameter template, naming the model file", () => {
    const large = readFileSync(join(CASES, "model-provider/models/llm/acme-large.yaml"), "utf8");
    const err = loadError("model-provider", {
      "models/llm/acme-large.yaml": large.replace("use_template: temperature", "use_template: warmth"),
    });
    expect(err.message).toBe(
      'models/llm/acme-large.yaml: parameter_rules[0].use_template: template "warmth" not found',
    );
  });

  it("requires a tool's identity name", () => {
    const forecast = readFileSync(join(CASES, "tool-plugin/tools/forecast.yaml"), "utf8");
    const err = loadError("tool-plugin", { "tools/forecast.yaml": forecast.replace("  name: forecast\n", "") });
    expect(err.message).toBe("tools/forecast.yaml: identity.name: is required");
  });
});

describe("extractAssets", () => {
  const idOf = (fileName: string, content: Uint8Array) =>
    `${createHash("sha256").update(content).update(fileName).digest("hex")}.svg`;

  it("rewrites icons to content-addressed ids and returns each file once", () => {
    const { read } = fixture("tool-plugin");
    const d = load("tool-plugin");
    const { declaration, assets } = extractAssets(d, read);
    const sun = read("_assets/sun.svg")!;
    const sunDark = read("_assets/sun-dark.svg")!;

    expect(declaration.icon).toBe(idOf("sun.svg", sun));
    expect(declaration.icon).toMatch(/^[0-9a-f]{64}\.svg$/);
    expect(declaration.icon_dark).toBe(idOf("sun-dark.svg", sunDark));
    expect(declaration.tool?.identity.icon).toBe(declaration.icon);
    expect(assets).toEqual([
      { id: idOf("sun.svg", sun), fileName: "sun.svg", data: sun },
      { id: idOf("sun-dark.svg", sunDark), fileName: "sun-dark.svg", data: sunDark },
    ]);
    expect(d.icon).toBe("sun.svg");
  });

  it("rewrites every language of a model provider's icons", () => {
    const { read } = fixture("model-provider");
    const { declaration, assets } = extractAssets(load("model-provider"), read);
    const small = idOf("acme-s.svg", read("_assets/acme-s.svg")!);
    expect(declaration.model?.icon_small).toEqual({ en_US: small, zh_Hans: small });
    expect(declaration.model?.icon_large).toEqual({ en_US: idOf("acme-l.svg", read("_assets/acme-l.svg")!) });
    expect(declaration.icon).toBe(small);
    expect(assets.map((a) => a.fileName)).toEqual(["acme-s.svg", "acme-l.svg"]);
  });

  it("names the field whose icon is missing from the package", () => {
    const { read } = fixture("tool-plugin", { "_assets/sun-dark.svg": null });
    expect(() => extractAssets(load("tool-plugin"), read)).toThrow("icon_dark: file _assets/sun-dark.svg not found");
  });
});

describe("loadManifest (what an installed plugin's start reads)", () => {
  it("reads the manifest alone and gives the runner and resources the whole declaration gives", () => {
    const { read } = fixture("model-provider");
    const requested: string[] = [];
    const manifest = loadManifest((path) => {
      requested.push(path);
      return read(path);
    });
    expect(requested).toEqual(["manifest.yaml"]);
    const whole = load("model-provider");
    expect(manifest.meta.runner).toEqual(whole.meta.runner);
    expect(manifest.resource).toEqual(whole.resource);
  });
});
