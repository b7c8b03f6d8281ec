/** JSON bodies under the depth and size limits, and path parameters that do not decode. */
import { describe, expect, it } from "vitest";
import { DaemonError } from "../../src/domain/errors.js";
import { ok } from "../../src/http/daemon-response.js";
import { nestingExceeds, parseJsonBody } from "../../src/http/json-body.js";
import { Router } from "../../src/http/router.js";

const deep = (n: number) => `${'{"a":'.repeat(n)}1${"}".repeat(n)}`;
const refusal = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    if (err instanceof DaemonError) return { code: err.code, status: err.httpStatus, message: err.message };
    throw err;
  }
  throw new Error("expected a refusal");
};

describe("JSON body limits", () => {
  const limits = { maxBodyBytes: 1024 * 1024, maxJsonDepth: 64 };

  it("counts nesting outside strings only, escaped quotes included", () => {
    expect(nestingExceeds(Buffer.from(deep(64)), 64)).toBe(false);
    expect(nestingExceeds(Buffer.from(deep(65)), 64)).toBe(true);
    expect(nestingExceeds(Buffer.from(JSON.stringify({ s: '[[[[[[\\"{{{{{{' })), 2)).toBe(false);
    expect(nestingExceeds(Buffer.from(JSON.stringify({ s: 'a\\"[[[', t: [[[1]]] })), 3)).toBe(true);
  });

  it("refuses a deep body with -400 before parsing it", () => {
    expect(refusal(() => parseJsonBody(Buffer.from(`{"data":${deep(10_000)}}`), limits))).toEqual({
      code: -400,
      status: 400,
      message: "request body is nested too deeply: at most 64 levels",
    });
  });

  it("refuses a body over the size limit with -400 and 413", () => {
    expect(refusal(() => parseJsonBody(Buffer.alloc(limits.maxBodyBytes + 1, 0x20), limits))).toMatchObject({
      code: -400,
      status: 413,
    });
  });

  it("parses what is within both limits", () => {
    expect(parseJsonBody(Buffer.from(`{"a":[1,{"b":"}]"}]}`), limits)).toEqual({ a: [1, { b: "}]" }] });
  });
});

describe("path parameters", () => {
  const router = new Router([
    { method: "GET", pattern: "/plugin/:tenant_id/asset/:asset_id", handler: async () => ok(true) },
  ]);

  it("finds the route without decoding, and decoding failures are a 400", () => {
    expect(router.find("GET", "/plugin/%E0%A4%A/asset/x")).toBeDefined();
    expect(refusal(() => router.match("GET", "/plugin/%E0%A4%A/asset/x"))).toMatchObject({ code: -400, status: 400 });
  });

  it("refuses single-segment parameters that decode to a path", () => {
    for (const id of ["..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "a%00.svg", "..", "%2E%2E"]) {
      expect(
        refusal(() => router.match("GET", `/plugin/t/asset/${id}`)),
        id,
      ).toMatchObject({ code: -400, status: 400 });
    }
    expect(router.match("GET", "/plugin/t/asset/ab%20c.svg")?.params).toEqual({ tenant_id: "t", asset_id: "ab c.svg" });
  });
});
