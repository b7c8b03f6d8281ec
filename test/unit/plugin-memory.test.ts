import { describe, expect, it } from "vitest";
import { DEFAULT_PLUGIN_MEMORY_FLOOR_BYTES, memoryLimitBytesOf } from "../../src/domain/declaration-facts.js";
import type { PluginDeclaration } from "../../src/domain/manifest.js";

const withMemory = (memory: number) => ({ resource: { memory } }) as unknown as PluginDeclaration;
const MiB = 1024 * 1024;

describe("the memory a plugin runs under", () => {
  it("is raised to the 1 GiB default floor for the 1 MiB that official manifests declare", () => {
    expect(DEFAULT_PLUGIN_MEMORY_FLOOR_BYTES).toBe(1024 * MiB);
    expect(memoryLimitBytesOf(withMemory(1 * MiB))).toBe(1024 * MiB);
  });

  it("is the manifest's resource.memory when that is above the floor", () => {
    expect(memoryLimitBytesOf(withMemory(2048 * MiB))).toBe(2048 * MiB);
  });

  it("takes the runtime's own floor, so a lower configured floor honours a declared 256 MiB", () => {
    expect(memoryLimitBytesOf(withMemory(256 * MiB), 128 * MiB)).toBe(256 * MiB);
    expect(memoryLimitBytesOf(withMemory(1 * MiB), 128 * MiB)).toBe(128 * MiB);
  });
});
