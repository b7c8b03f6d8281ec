/** Endpoint settings rules as upstream applies them: validation, masking, the masked-secret merge. */
import { describe, expect, it } from "vitest";
import {
  hasSecrets,
  maskSettings,
  mergeMaskedSecrets,
  type SettingsSchema,
  settingsProblem,
} from "../../src/domain/endpoint-settings.js";

const schema = [
  { name: "token", type: "secret-input", required: true, label: { en_US: "Token" } },
  { name: "mode", type: "select", label: { en_US: "Mode" }, options: [{ value: "a", label: { en_US: "A" } }] },
  { name: "on", type: "boolean", label: { en_US: "On" } },
  { name: "model", type: "model-selector", scope: "rerank", label: { en_US: "Model" } },
  { name: "app", type: "app-selector", label: { en_US: "App" } },
] as unknown as SettingsSchema;

describe("settingsProblem", () => {
  it("accepts settings that fit and reports the first problem otherwise", () => {
    expect(settingsProblem({ token: "t", mode: "a", on: true }, schema)).toBeUndefined();
    expect(settingsProblem({}, schema)).toBe("missing required setting: token");
    expect(settingsProblem({ token: null }, schema)).toBe("missing required setting: token");
    expect(settingsProblem({ token: 1 }, schema)).toBe("setting token is not a string");
    expect(settingsProblem({ token: "t", mode: "b" }, schema)).toBe("setting mode is not a valid option");
    expect(settingsProblem({ token: "t", on: "yes" }, schema)).toBe("setting on is not a boolean");
    expect(settingsProblem({ token: "t", app: {} }, schema)).toBe("setting app is missing app_id");
    expect(settingsProblem({ token: "t", model: { provider: "p", model: "m", model_type: "rerank" } }, schema)).toBe(
      "setting model is missing score_threshold",
    );
    expect(settingsProblem(Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 1])), schema)).toBe(
      "too many setting fields",
    );
  });
});

describe("masking", () => {
  it("masks secrets only, keeping two bytes at each end past six bytes", () => {
    expect(maskSettings({ token: "sk-1234567890", mode: "a", other: "x" }, schema)).toEqual({
      token: "sk*********90",
      mode: "a",
      other: "x",
    });
    expect(maskSettings({ token: "123456" }, schema)).toEqual({ token: "******" });
    expect(maskSettings({ token: 5 }, schema)).toEqual({ token: 5 });
    expect(hasSecrets(schema)).toBe(true);
    expect(hasSecrets([])).toBe(false);
  });

  it("keeps the stored secret when the update sends its masked form back", () => {
    const stored = { token: "sk-1234567890", mode: "a" };
    expect(mergeMaskedSecrets({ token: "sk*********90", mode: "a" }, stored, schema)).toEqual(stored);
    expect(mergeMaskedSecrets({ token: "new-token-value", mode: "a" }, stored, schema)).toEqual({
      token: "new-token-value",
      mode: "a",
    });
    // Only secrets are merged: a text field equal to anything stays as sent.
    expect(mergeMaskedSecrets({ mode: "a" }, stored, schema)).toEqual({ mode: "a" });
  });
});
