import { describe, expect, it } from "vitest";
import { memoryLimitBytesOf, MIN_PLUGIN_MEMORY_BYTES } from "../../src/domain/declaration-facts.js";
import type { PluginDeclaration } from "../../src/domain/manifest.js";

const withMemory = (memory: number) => ({ resource: { memory } }) as unknown as PluginDeclaration;
const MiB = 1024 * 1024;

describe("the memory a plugin runs under", () => {
  it("is the manifest's resource.memory when it is at least 128 MiB", () => {
    expect(memoryLimitBytesOf(withMemory(256 * MiB))).toBe(256 * MiB);
  });

  it("is raised to 128 MiB for manifests that declare less, as official plugins do (1 MiB)", () => {
    expect(memoryLimitBytesOf(withMemory(1 * MiB))).toBe(MIN_PLUGIN_MEMORY_BYTES);
    expect(MIN_PLUGIN_MEMORY_BYTES).toBe(128 * MiB);
  });
});
