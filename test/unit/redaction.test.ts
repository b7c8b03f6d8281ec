/** What never reaches a log line: secret-named fields, registered secret values anywhere, errors flattened. */
import { describe, expect, it } from "vitest";
import { loadConfig, logLevel, logLevelOf } from "../../src/config.js";
import { redact, redactText, registerSecret } from "../../src/observability/redaction.js";

describe("log redaction", () => {
  it("blanks fields named like secrets at any depth, and leaves the rest", () => {
    const out = redact({
      headers: { "X-Api-Key": "k1", accept: "*/*" },
      data: { credentials: { api_key: "k2" }, text: "hi" },
      openai_api_key: "k3",
      password: "",
    }) as any;
    expect(out).toEqual({
      headers: { "X-Api-Key": "[REDACTED]", accept: "*/*" },
      data: { credentials: "[REDACTED]", text: "hi" },
      openai_api_key: "[REDACTED]",
      password: "",
    });
  });

  it("removes a registered secret (a key read from Secrets Manager) from any string, error messages included", () => {
    registerSecret("sm-secret-value-81f2");
    expect(redactText("calling with sm-secret-value-81f2 now")).toBe("calling with [REDACTED] now");
    const out = redact({ err: new Error("bad key sm-secret-value-81f2") }) as {
      err: { name: string; message: string; stack: string };
    };
    expect(out.err.name).toBe("Error");
    expect(out.err.message).toBe("bad key [REDACTED]");
    expect(out.err.stack).not.toContain("sm-secret-value-81f2");
  });

  it("cuts cycles and summarises bytes", () => {
    const loop: Record<string, unknown> = { name: "a" };
    loop.self = loop;
    expect(redact({ loop, bytes: Buffer.alloc(10) })).toEqual({
      loop: { name: "a", self: "[Circular]" },
      bytes: "[10 bytes]",
    });
  });

  it("takes LOG_LEVEL as given, and info for a value that names no level", () => {
    expect(logLevelOf("DEBUG")).toBe("debug");
    expect(logLevelOf("silent")).toBe("silent");
    expect(logLevelOf("verbose")).toBe("info");
    expect(logLevelOf(undefined)).toBe("info");
    // The logger's level (read before any daemon exists) and the daemon's configured one agree.
    for (const LOG_LEVEL of ["Warn", "verbose", ""])
      expect(loadConfig({ LOG_LEVEL }).logLevel).toBe(logLevel({ LOG_LEVEL }));
    expect(loadConfig({ LOG_LEVEL: "Warn" }).logLevel).toBe("warn");
  });
});
