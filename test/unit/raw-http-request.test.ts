/**
 * The raw request handed to plugin endpoints. Expected bytes were produced by Go's
 * `(*http.Request).Write` on the same inputs, so these pin the serialization upstream plugins see.
 */
import { describe, expect, it } from "vitest";
import { canonicalHeaderKey, rawEndpointRequest, writeHttpRequest } from "../../src/domain/raw-http-request.js";

const write = (
  method: string,
  path: string,
  query: string,
  host: string,
  headers: Array<[string, string]>,
  body: string,
) =>
  writeHttpRequest({
    method,
    path,
    query: new URLSearchParams(query),
    host,
    headers: new Map(headers.map(([k, v]) => [k.toLowerCase(), v])),
    body: Buffer.from(body),
  }).toString("latin1");

describe("Go's http.Request.Write", () => {
  it("writes Host and User-Agent first, Content-Length, then the other headers sorted, and the query in key order", () => {
    const raw = write(
      "POST",
      "/hook",
      "b=2&a=1&a=0&c=x+y%26z",
      "example.com:5002",
      [
        ["X-Echo", "hi"],
        ["Content-Type", "application/json"],
        ["User-Agent", "curl/8"],
        ["Dify-Hook-Id", "abc"],
      ],
      '{"x":1}',
    );
    expect(raw).toBe(
      'POST /hook?a=1&a=0&b=2&c=x+y%26z HTTP/1.1\r\nHost: example.com:5002\r\nUser-Agent: curl/8\r\nContent-Length: 7\r\nContent-Type: application/json\r\nDify-Hook-Id: abc\r\nX-Echo: hi\r\n\r\n{"x":1}',
    );
  });

  it("escapes the path like url.URL.EscapedPath and defaults the User-Agent", () => {
    expect(write("GET", "/hook/a b!*'()~ü", "", "h", [["Accept", "*/*"]], "")).toBe(
      "GET /hook/a%20b%21%2A%27%28%29~%C3%BC HTTP/1.1\r\nHost: h\r\nUser-Agent: Go-http-client/1.1\r\nAccept: */*\r\n\r\n",
    );
  });

  it("sends an empty POST body chunked, as Go does for a present body of length zero", () => {
    expect(write("POST", "/hook", "", "h", [], "")).toBe(
      "POST /hook HTTP/1.1\r\nHost: h\r\nUser-Agent: Go-http-client/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
  });

  it("drops an empty body on DELETE, GET and OPTIONS and keeps a key without value", () => {
    expect(write("DELETE", "/", "", "h", [], "")).toBe(
      "DELETE / HTTP/1.1\r\nHost: h\r\nUser-Agent: Go-http-client/1.1\r\n\r\n",
    );
    expect(write("OPTIONS", "/o", "k", "h", [], "")).toBe(
      "OPTIONS /o?k= HTTP/1.1\r\nHost: h\r\nUser-Agent: Go-http-client/1.1\r\n\r\n",
    );
  });

  it("gives a GET with a body its Content-Length and cleans header values", () => {
    expect(write("GET", "/g", "", "h", [], "body")).toBe(
      "GET /g HTTP/1.1\r\nHost: h\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 4\r\n\r\nbody",
    );
    expect(write("PUT", "/p", "", "h", [["X-Sp", "  v \r\n w "]], "data")).toBe(
      "PUT /p HTTP/1.1\r\nHost: h\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 4\r\nX-Sp: v    w\r\n\r\ndata",
    );
  });

  it("canonicalizes header names like textproto", () => {
    expect(canonicalHeaderKey("x-dify-HOOK-id")).toBe("X-Dify-Hook-Id");
    expect(canonicalHeaderKey("content-type")).toBe("Content-Type");
    expect(canonicalHeaderKey("bad header")).toBe("bad header");
  });
});

describe("upstream's endpoint header rules", () => {
  const base = {
    method: "POST",
    path: "/hook",
    query: new URLSearchParams("z=1"),
    body: Buffer.from("hi"),
  };

  it("removes IP traces, restores the original host and adds the hook headers", () => {
    const raw = rawEndpointRequest(
      {
        ...base,
        headers: {
          host: "api.example.com",
          "x-forwarded-for": "1.2.3.4",
          "x-real-ip": "1.2.3.4",
          "x-original-host": "dify.example.com",
          "x-original-url": "/x",
          "x-forwarded-proto": "https",
          "user-agent": "ua",
        },
      },
      "hook123",
    ).toString("latin1");
    expect(raw).toBe(
      "POST /hook?z=1 HTTP/1.1\r\nHost: dify.example.com\r\nUser-Agent: ua\r\nContent-Length: 2\r\n" +
        "Dify-Hook-Id: hook123\r\nDify-Hook-Url: https://dify.example.com/e/hook123/hook\r\nX-Forwarded-Proto: https\r\n\r\nhi",
    );
  });

  it("keeps a Dify-Hook-Url the caller supplied and overrides a forged Dify-Hook-Id", () => {
    const raw = rawEndpointRequest(
      { ...base, headers: { host: "h:5002", "dify-hook-url": "https://given/e/x", "dify-hook-id": "forged" } },
      "real",
    ).toString("latin1");
    expect(raw).toContain("Dify-Hook-Id: real\r\n");
    expect(raw).toContain("Dify-Hook-Url: https://given/e/x\r\n");
    expect(raw).toContain("Host: h:5002\r\n");
  });
});
