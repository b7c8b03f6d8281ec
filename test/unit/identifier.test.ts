import { describe, expect, it } from "vitest";
import { z } from "zod";
import { DaemonError } from "../../src/domain/errors.js";
import {
  formatUniqueIdentifier,
  identifierParts,
  isRemoteLike,
  isUniqueIdentifier,
  type PluginUniqueIdentifier,
  parseUniqueIdentifier,
  pluginIdOf,
  uniqueIdentifier,
  uniqueIdentifierSchema,
} from "../../src/domain/identifier.js";

const SUM64 = "f47ca91dfa51d374e6dc4fa3b9b6839396e1e5bff0d6e846cc940c828f8f131b";
const SUM32 = "0123456789abcdef0123456789abcdef";

describe("unique identifiers", () => {
  it.each([
    `langgenius/openai:0.0.19@${SUM64}`,
    `langgenius/openai:1.2@${SUM64}`,
    `langgenius/openai:1.2.3.4@${SUM64}`,
    `langgenius/openai:1.2.3-beta_1@${SUM64}`,
    `openai:0.0.1@${SUM64}`,
    `a_b-c/x-y_z:9999.0.1@${SUM32}`,
  ])("accepts %s", (raw) => {
    expect(isUniqueIdentifier(raw)).toBe(true);
    expect(parseUniqueIdentifier(raw).raw).toBe(raw);
  });

  it.each([
    [`langgenius/openai:1@${SUM64}`, "a single version part"],
    [`langgenius/openai:1.2.3.4.5@${SUM64}`, "five version parts"],
    [`langgenius/openai:1.23456.0@${SUM64}`, "a version part over four digits"],
    [`langgenius/openai:1.0.0-${"a".repeat(17)}@${SUM64}`, "a suffix over 16 characters"],
    [`langgenius/openai:1.0.0-@${SUM64}`, "an empty suffix"],
    [`LangGenius/openai:1.0.0@${SUM64}`, "uppercase author"],
    [`langgenius/openai:1.0.0@${SUM64.toUpperCase()}`, "uppercase checksum"],
    [`langgenius/openai:1.0.0@${SUM32.slice(1)}`, "a 31-character checksum"],
    [`langgenius/openai:1.0.0@${SUM64}0`, "a 65-character checksum"],
    [`langgenius/openai:1.0.0@${"g".repeat(32)}`, "a non-hex checksum"],
    ["langgenius/openai:1.0.0", "no checksum"],
    [`langgenius/openai@${SUM64}`, "no version"],
    [`/openai:1.0.0@${SUM64}`, "an empty author"],
    [`a/b/openai:1.0.0@${SUM64}`, "two slashes"],
    [`${"a".repeat(65)}/openai:1.0.0@${SUM64}`, "an author over 64 characters"],
    [`langgenius/${"n".repeat(256)}:1.0.0@${SUM64}`, "a name over 255 characters"],
    [` langgenius/openai:1.0.0@${SUM64}`, "leading whitespace"],
  ])("rejects %s (%s)", (raw) => {
    expect(isUniqueIdentifier(raw)).toBe(false);
    expect(() => parseUniqueIdentifier(raw)).toThrow(DaemonError);
  });

  it("reports an invalid identifier as PluginUniqueIdentifierError with upstream's message", () => {
    const err = (() => {
      try {
        parseUniqueIdentifier("nonsense");
      } catch (e) {
        return e as DaemonError;
      }
    })();
    expect(err?.errorType).toBe("PluginUniqueIdentifierError");
    expect(err?.code).toBe(-400);
    expect(err?.message).toBe("plugin_unique_identifier is not valid: nonsense");
  });

  it("splits an identifier into its parts", () => {
    expect(parseUniqueIdentifier(`langgenius/openai:1.2.3-rc1@${SUM64}`)).toEqual({
      raw: `langgenius/openai:1.2.3-rc1@${SUM64}`,
      author: "langgenius",
      name: "openai",
      version: "1.2.3-rc1",
      checksum: SUM64,
      pluginId: "langgenius/openai",
    });
    const anonymous = parseUniqueIdentifier(`openai:0.0.1@${SUM32}`);
    expect(anonymous.author).toBeUndefined();
    expect(anonymous.pluginId).toBe("openai");
  });

  it("formats identifiers with and without an author, and refuses invalid parts", () => {
    expect(formatUniqueIdentifier({ author: "langgenius", name: "openai", version: "0.0.19", checksum: SUM64 })).toBe(
      `langgenius/openai:0.0.19@${SUM64}`,
    );
    expect(formatUniqueIdentifier({ name: "openai", version: "0.0.19", checksum: SUM64 })).toBe(
      `openai:0.0.19@${SUM64}`,
    );
    expect(formatUniqueIdentifier({ author: "", name: "openai", version: "0.0.19", checksum: SUM64 })).toBe(
      `openai:0.0.19@${SUM64}`,
    );
    expect(() => formatUniqueIdentifier({ name: "Open AI", version: "1.0.0", checksum: SUM64 })).toThrow(
      /plugin_unique_identifier is not valid/,
    );
  });

  it("treats a UUID author as a remote-debugging plugin", () => {
    const remote = (author: string) => isRemoteLike(uniqueIdentifier(`${author}/tool:0.0.1@${SUM64}`));
    expect(remote("6b0d5f6c-6a5f-4a7e-9d8e-0f1e2d3c4b5a")).toBe(true);
    expect(remote("6b0d5f6c6a5f4a7e9d8e0f1e2d3c4b5a")).toBe(true); // Go's uuid.Parse also takes bare hex
    expect(remote("langgenius")).toBe(false);
    expect(remote("6b0d5f6c-6a5f-4a7e-9d8e-0f1e2d3c4b5")).toBe(false);
    expect(isRemoteLike(uniqueIdentifier(`tool:0.0.1@${SUM64}`))).toBe(false);
  });

  it("derives the plugin id like upstream, even from strings that are not identifiers", () => {
    expect(pluginIdOf(`langgenius/openai:0.0.19@${SUM64}`)).toBe("langgenius/openai");
    expect(pluginIdOf("langgenius/openai")).toBe("langgenius/openai");
    expect(pluginIdOf("a:b:c")).toBe("a:b:c");
  });

  it.each([`langgenius/openai:1.2.3-rc_1@${SUM64}`, `openai:0.0.1@${SUM32}`, `a_b-c/x-y_z:9999.0.1.7@${SUM32}`])(
    "reads the parts of a checked identifier as the full parse does: %s",
    (raw) => {
      const checked = uniqueIdentifier(raw);
      expect(checked).toBe(raw);
      expect(identifierParts(checked)).toEqual(parseUniqueIdentifier(raw));
      expect(identifierParts(checked).pluginId).toBe(pluginIdOf(raw));
    },
  );

  it("checks identifiers in schemas, keeping the string byte for byte", () => {
    const schema = z.object({ plugin_unique_identifier: uniqueIdentifierSchema });
    const raw = `langgenius/openai:0.0.19@${SUM64}`;
    const parsed: { plugin_unique_identifier: PluginUniqueIdentifier } = schema.parse({
      plugin_unique_identifier: raw,
    });
    expect(parsed.plugin_unique_identifier).toBe(raw);
    expect(JSON.stringify(parsed)).toBe(JSON.stringify({ plugin_unique_identifier: raw }));
    const refused = schema.safeParse({ plugin_unique_identifier: "langgenius/openai:0.0.19" });
    expect(refused.success).toBe(false);
    expect(refused.error?.issues[0]?.message).toBe("plugin_unique_identifier is not valid");
    expect(() => uniqueIdentifier("nonsense")).toThrow("plugin_unique_identifier is not valid: nonsense");
  });
});
