/** What a passing run of scripts/smoke.ts prints, checked the same way against every daemon it runs on. */
import { expect } from "vitest";
import { SMOKE_PATHS } from "../../scripts/smoke/paths.js";

export function expectEveryPathPassed(output: string): void {
  for (const path of SMOKE_PATHS) expect(output, path).toMatch(new RegExp(`^PASS  ${path} `, "m"));
  expect(output).toMatch(/LLM answered "pong from the stand-in"/);
}
