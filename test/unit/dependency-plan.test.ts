import { describe, expect, it } from "vitest";
import { dependencyPlan } from "../../src/adapters/local/plugin-environment.js";

describe("how a plugin's dependencies are installed (upstream's choice)", () => {
  it("installs a shipped uv.lock exactly, with uv sync --frozen", () => {
    expect(dependencyPlan({ pyproject: true, uvLock: true, requirements: true }, false)).toMatchObject({
      file: "pyproject.toml",
      frozen: true,
    });
  });
  it("resolves pyproject.toml with uv sync when there is no lock", () => {
    expect(dependencyPlan({ pyproject: true, uvLock: false, requirements: false }, false)).toMatchObject({
      file: "pyproject.toml",
      frozen: false,
    });
  });
  it("uses requirements.txt when there is no pyproject.toml, or when a mirror is configured", () => {
    expect(dependencyPlan({ pyproject: false, uvLock: false, requirements: true }, false)).toMatchObject({
      file: "requirements.txt",
    });
    expect(dependencyPlan({ pyproject: true, uvLock: true, requirements: true }, true)).toMatchObject({
      file: "requirements.txt",
    });
  });
  it("installs nothing when the package lists no dependencies", () => {
    expect(dependencyPlan({ pyproject: false, uvLock: false, requirements: false }, false)).toBeUndefined();
  });
});
