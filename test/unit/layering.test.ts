/**
 * The rings of src/, enforced: every relative import is read and checked against what its ring
 * may depend on. Domain is plain TypeScript; ports see only the domain; stores build on ports;
 * adapters implement ports without reaching into stores, services or the HTTP edge; services
 * never speak HTTP. A new import across a ring fails here with the file and the import.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const src = fileURLToPath(new URL("../../src/", import.meta.url));

/** What each ring must not import (top-level folders or files of src/, without extension). */
const forbidden: Record<string, readonly string[]> = {
  domain: [
    "ports",
    "stores",
    "adapters",
    "services",
    "routes",
    "http",
    "local",
    "aws-local",
    "cli",
    "migration",
    "observability",
    "daemon",
    "config",
    "logger",
  ],
  ports: ["stores", "adapters", "services", "routes", "http", "local", "aws-local", "cli", "migration", "daemon"],
  stores: ["adapters", "services", "routes", "http", "local", "aws-local", "cli", "daemon"],
  adapters: ["stores", "services", "routes", "http", "local", "cli", "daemon"],
  services: ["http", "routes", "local", "aws-local", "cli", "daemon"],
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

/** The top-level folder (or root file) of src/ a path is in. */
const ringOf = (path: string): string => relative(src, path).split("/")[0]!.replace(/\.ts$/, "");

function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const specifiers = [...text.matchAll(/(?:from\s+|import\s*\(\s*|^import\s+)["'](\.[^"']+)["']/gm)].map((m) => m[1]!);
  return specifiers.map((s) => resolve(dirname(file), s.replace(/\.js$/, ".ts")));
}

function violations(): string[] {
  const found: string[] = [];
  for (const file of sourceFiles(src)) {
    const rules = forbidden[ringOf(file)];
    if (!rules) continue;
    for (const target of importsOf(file)) {
      if (!target.startsWith(src)) continue;
      if (rules.includes(ringOf(target))) found.push(`${relative(src, file)} imports ${relative(src, target)}`);
    }
  }
  return found;
}

describe("the rings of src/", () => {
  it("have no import across a forbidden boundary", () => {
    expect(violations()).toEqual([]);
  });

  it("are read from real imports (the check sees every ring)", () => {
    const rings = new Set(sourceFiles(src).map(ringOf));
    for (const ring of Object.keys(forbidden)) expect(rings.has(ring), ring).toBe(true);
    expect(importsOf(join(src, "services", "installer.ts")).some((p) => ringOf(p) === "domain")).toBe(true);
  });
});
