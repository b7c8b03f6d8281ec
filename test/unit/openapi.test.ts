/**
 * docs/openapi.json is the description generated from the routes and their request schemas: a
 * route or schema changed without regenerating it fails here.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { openApiDocument } from "../../src/api-description/openapi.js";

const committed = JSON.parse(readFileSync(fileURLToPath(new URL("../../docs/openapi.json", import.meta.url)), "utf8"));

describe("docs/openapi.json", () => {
  it("matches the routes and schemas (regenerate with: npx tsx scripts/write-openapi.ts)", async () => {
    expect(committed).toEqual(await openApiDocument());
  });

  it("is OpenAPI 3.1 with the key header, every dispatch action and the request schemas the handlers validate", () => {
    expect(committed.openapi).toBe("3.1.0");
    expect(committed.components.securitySchemes.daemonKey).toMatchObject({
      type: "apiKey",
      in: "header",
      name: "X-Api-Key",
    });
    const install = committed.paths["/plugin/{tenant_id}/management/install/identifiers"].post;
    expect(install.requestBody.content["application/json"].schema).toMatchObject({
      type: "object",
      required: expect.arrayContaining(["plugin_unique_identifiers", "source"]),
    });
    const list = committed.paths["/plugin/{tenant_id}/management/list"].get;
    expect(list.parameters.map((p: { name: string; in: string }) => `${p.in}:${p.name}`)).toEqual([
      "path:tenant_id",
      "query:page",
      "query:page_size",
    ]);
    expect(committed.paths["/plugin/{tenant_id}/dispatch/llm/invoke"].post.responses["200"].content).toHaveProperty(
      "text/event-stream",
    );
    expect(committed.paths["/v2/invoke/dispatch/model/polling/start"]).toBeUndefined();
    expect(committed.paths["/health/check"].get.security).toEqual([]);
  });
});
