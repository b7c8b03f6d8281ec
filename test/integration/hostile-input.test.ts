/**
 * Hostile input against the real local daemon over real HTTP (and its real debugging port), with
 * a real plugin process: deep JSON on every JSON route, malformed escapes in every path
 * parameter, oversized and slow bodies with and without the key, huge plugin output lines and an
 * endless pre-handshake line. Each case asserts what the caller sees, and that the daemon still
 * answers /health/check afterwards.
 *
 * Memory is the RSS of this test process, which hosts the daemon; clients here stream their
 * bodies from one reused chunk, so what grows is the daemon's. The bench
 * (bench/hostile-memory.ts) measures the bundled daemon as a child process instead.
 */
import { request } from "node:http";
import { type AddressInfo, connect, type Server } from "node:net";
import v8 from "node:v8";
import { runInNewContext } from "node:vm";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { LocalPluginRuntime } from "../../src/adapters/local/local-plugin-runtime.js";
import { startRemoteDebuggingServer } from "../../src/adapters/local/remote-debugging-server.js";
import { backwardsInvocationRoutes } from "../../src/routes/backwards-invocation.js";
import { dispatchRoutes } from "../../src/routes/dispatch.js";
import { managementGroup } from "../../src/routes/management.js";
import { packFixture } from "../support/fixture-packages.js";
import { installPackage, readEvents, startTestDaemon, TEST_KEY, type TestDaemon } from "../support/local-daemon.js";

const T = "77777777-2222-3333-4444-555555555555";
const MiB = 1024 * 1024;
const IDLE_MS = 1500;
let d: TestDaemon;
let uid: string;
let debugging: Server;

beforeAll(async () => {
  d = await startTestDaemon({ REQUEST_BODY_IDLE_TIMEOUT: String(IDLE_MS), PLUGIN_REMOTE_INSTALLING_ENABLED: "true" });
  if (!(d.daemon.runtime instanceof LocalPluginRuntime)) throw new Error("expected the local runtime");
  debugging = await startRemoteDebuggingServer(d.daemon.remotePlugins, d.daemon.runtime, {
    host: "127.0.0.1",
    port: 0,
    lineMaxBytes: d.daemon.config.pluginLineMaxBytes,
    maxConnections: d.daemon.config.remoteInstallingMaxConn,
  });
  uid = await installPackage(d, T, await packFixture("misbehaving-tool"));
}, 600_000);
afterAll(async () => {
  debugging?.close();
  await d?.stop();
});
afterEach(async () => {
  const health = await fetch(`${d.url}/health/check`);
  expect(health.status).toBe(200);
  expect(((await health.json()) as { status: string }).status).toBe("ok");
});

interface Envelope {
  code: number | string;
  message: string;
  data: unknown;
}
const errorText = (e: Envelope) => (JSON.parse(e.message) as { message: string }).message;
const deep = (levels: number) => `${'{"a":'.repeat(levels)}1${"}".repeat(levels)}`;

// A full collection before "after" readings, so they show what is kept, not what awaits the GC.
v8.setFlagsFromString("--expose-gc");
const collectGarbage = runInNewContext("gc") as () => void;
/** Memory this process keeps (JS heap plus buffers) after a full collection, in MiB. */
const retainedMiB = () => {
  collectGarbage();
  collectGarbage();
  const m = process.memoryUsage();
  return (m.heapUsed + m.external) / MiB;
};

/** The RSS peak above `before` while `work` runs, sampled every 10 ms. */
async function rssGrowth<T>(work: () => Promise<T>): Promise<{ result: T; peakMiB: number; afterMiB: number }> {
  const before = process.memoryUsage().rss;
  let peak = before;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
  try {
    const result = await work();
    peak = Math.max(peak, process.memoryUsage().rss);
    return { result, peakMiB: (peak - before) / MiB, afterMiB: (process.memoryUsage().rss - before) / MiB };
  } finally {
    clearInterval(timer);
  }
}

interface SendOptions {
  path: string;
  method?: string;
  headers?: Record<string, string>;
  /** Bytes to send in all (one reused chunk, so the client holds almost nothing). */
  totalBytes: number;
  /** What to send instead of spaces (then `totalBytes` is its length). */
  body?: Buffer;
  /** Announce the length (default) or send chunked. */
  contentLength?: boolean;
  chunkBytes?: number;
  /** Pause between chunks (a slow client). */
  intervalMs?: number;
  /** Stop sending after this many bytes and wait (a stalled client). */
  stallAfterBytes?: number;
}

/** Sends a body with node:http and stops sending once the answer arrives (an early refusal). */
function send(o: SendOptions): Promise<{ status: number; body: Envelope | undefined; sentBytes: number; ms: number }> {
  const started = Date.now();
  const chunk = Buffer.alloc(o.chunkBytes ?? 64 * 1024, 0x20);
  return new Promise((resolve, reject) => {
    let sent = 0;
    let answered = false;
    const headers: Record<string, string> = { "content-type": "application/json", ...o.headers };
    if (o.contentLength ?? true) headers["content-length"] = String(o.totalBytes);
    const req = request(`${d.url}${o.path}`, { method: o.method ?? "POST", headers }, (res) => {
      answered = true;
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          body: text ? (JSON.parse(text) as Envelope) : undefined,
          sentBytes: sent,
          ms: Date.now() - started,
        }),
      );
      res.on("error", reject);
    });
    req.on("error", (err) => {
      if (!answered) reject(err);
    });
    const pump = async () => {
      while (!answered && sent < o.totalBytes) {
        if (o.stallAfterBytes !== undefined && sent >= o.stallAfterBytes) return;
        const piece = o.body
          ? o.body.subarray(sent, sent + chunk.length)
          : chunk.subarray(0, Math.min(chunk.length, o.totalBytes - sent));
        sent += piece.length;
        if (!req.write(piece)) await new Promise<void>((r) => req.once("drain", () => r()));
        if (o.intervalMs) await new Promise((r) => setTimeout(r, o.intervalMs));
        if (req.destroyed) return;
      }
      if (!answered && !req.destroyed) req.end();
    };
    pump().catch(() => undefined);
  });
}

const dispatchHeaders = { "x-plugin-id": "fixtures/misbehaving-tool" };
const tool = (name: string, params: Record<string, unknown>) => ({
  provider: "misbehaving",
  tool: name,
  credentials: {},
  credential_type: "api-key",
  tool_parameters: params,
});
const invoke = (params: Record<string, unknown>) =>
  d.call(`/plugin/${T}/dispatch/tool/invoke`, {
    method: "POST",
    headers: dispatchHeaders,
    json: { user_id: "u1", data: tool("huge_output", params) },
  });

describe("deeply nested JSON", () => {
  it("a tool call whose parameter or context nests 10,000 deep gets -400, on both dispatch routes, and the plugin still answers", async () => {
    const cases = [
      {
        path: `/plugin/${T}/dispatch/tool/invoke`,
        headers: dispatchHeaders,
        text: `{"user_id":"u1","data":{"provider":"misbehaving","tool":"huge_output","tool_parameters":{"megabytes":${deep(10_000)}}}}`,
      },
      {
        path: `/plugin/${T}/dispatch/tool/invoke`,
        headers: dispatchHeaders,
        text: `{"user_id":"u1","data":{"tool":"huge_output"},"context":${deep(10_000)}}`,
      },
      {
        path: "/v2/invoke/dispatch/tool/invoke",
        headers: { "x-plugin-unique-identifier": uid },
        text: `{"user_id":"u1","tenant_id":"${T}","data":{"tool":"huge_output"},"context":${deep(10_000)}}`,
      },
    ];
    for (const c of cases) {
      const res = await d.call(c.path, {
        method: "POST",
        headers: { ...c.headers, "content-type": "application/json" },
        body: c.text,
      });
      expect(res.status, c.path).toBe(400);
      const envelope = (await res.json()) as Envelope;
      expect(envelope.code).toBe(-400);
      expect(errorText(envelope)).toBe("request body is nested too deeply: at most 512 levels");
    }
    const events = await readEvents(await invoke({ megabytes: 0.001 }));
    expect(events.at(-1)?.code).toBe(0);
  });

  it("every POST route answers deep JSON with -400 or ignores a body it does not read; none answers 5xx", async () => {
    const routes = [
      ...managementGroup(d.daemon.groups.management),
      ...dispatchRoutes(d.daemon.groups.dispatch),
      ...backwardsInvocationRoutes(d.daemon.groups["backwards-invocation"]),
    ].filter((r) => r.method === "POST");
    expect(routes.length).toBeGreaterThan(15);
    const answers: Record<string, string> = {};
    for (const route of routes) {
      const path = route.pattern
        .replace(":tenant_id", T)
        .replace(/:[a-z_]+/g, "x")
        .replace(/\*[a-z_]+/, "tool/invoke");
      const res = await d.call(path, {
        method: "POST",
        headers: { ...dispatchHeaders, "content-type": "application/json" },
        body: `{"data":${deep(10_000)}}`,
      });
      const text = await res.text();
      answers[route.pattern] = `${res.status} ${text.slice(0, 120)}`;
      expect(res.status, `${route.pattern}: ${text}`).toBeLessThan(500);
      expect(text, route.pattern).not.toContain('"code":-500');
    }
    // The routes that read a JSON body all refuse it the same way.
    const refused = Object.entries(answers)
      .filter(([, a]) => a.includes("nested too deeply"))
      .map(([p]) => p);
    expect(refused).toEqual(
      expect.arrayContaining([
        "/plugin/:tenant_id/dispatch/*action",
        "/plugin/:tenant_id/management/install/identifiers",
        "/plugin/:tenant_id/management/install/upgrade",
        "/plugin/:tenant_id/endpoint/setup",
        "/backwards-invocation/transaction",
      ]),
    );
  });
});

describe("malformed path parameters", () => {
  const bad = "%E0%A4%A";
  const cases: Array<[string, string, string]> = [
    ["tenant_id", "GET", `/plugin/${bad}/management/list?page=1&page_size=10`],
    ["tenant_id (dispatch)", "POST", `/plugin/${bad}/dispatch/tool/invoke`],
    ["action", "POST", `/plugin/${T}/dispatch/${bad}`],
    ["asset_id", "GET", `/plugin/${T}/asset/${bad}`],
    ["task_id", "GET", `/plugin/${T}/management/install/tasks/${bad}`],
    ["task_id (delete)", "POST", `/plugin/${T}/management/install/tasks/${bad}/delete`],
    ["identifier", "POST", `/plugin/${T}/management/install/tasks/x/delete/${bad}`],
    ["hook_id", "GET", `/e/${bad}/anything`],
    ["path (endpoint)", "GET", `/e/some-hook/${bad}`],
  ];
  it.each(cases)("%s: 400 with -400, also without a body read", async (_name, method, path) => {
    const res = await d.call(path, { method, ...(method === "POST" && { json: { user_id: "u1", data: {} } }) });
    expect(res.status).toBe(400);
    const envelope = (await res.json()) as Envelope;
    expect(envelope.code).toBe(-400);
    expect(errorText(envelope)).toMatch(/^malformed percent-escape in path parameter /);
  });

  it("a key check comes first: without the key a malformed path is a 401", async () => {
    const res = await fetch(`${d.url}/plugin/${bad}/management/list?page=1&page_size=10`);
    expect(res.status).toBe(401);
    expect(((await res.json()) as Envelope).code).toBe(-401);
  });

  it.each(["..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "icon%00.svg", "%2E%2E%2Fx"])(
    "asset id %s is a 400, not an internal error",
    async (id) => {
      const res = await d.call(`/plugin/${T}/asset/${id}`);
      expect(res.status).toBe(400);
      const envelope = (await res.json()) as Envelope;
      expect(envelope.code).toBe(-400);
      expect(errorText(envelope)).toBe("invalid path parameter asset_id");
    },
  );

  it("a multipart upload without a boundary is a -400", async () => {
    const res = await d.call(`/plugin/${T}/management/install/upload/package`, {
      method: "POST",
      headers: { "content-type": "multipart/form-data" },
      body: "x",
    });
    expect(res.status).toBeLessThan(500);
    const envelope = (await res.json()) as Envelope;
    expect(envelope.code).toBe(-400);
    expect(errorText(envelope)).toContain("Boundary not found");
  });

  it("an unknown route is upstream's 404, answered before any body is read", async () => {
    const res = await send({ path: "/no/such/route", totalBytes: 200 * MiB });
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ code: "not_found", message: "route not found" });
    expect(res.sentBytes).toBeLessThan(100 * MiB);
  });
});

describe("oversized bodies", () => {
  it("four concurrent 100 MB uploads without the key each get a 401 before their body is read", async () => {
    const { result, peakMiB } = await rssGrowth(() =>
      Promise.all(
        Array.from({ length: 4 }, () =>
          send({
            path: `/plugin/${T}/management/install/upload/package`,
            headers: { "content-type": "multipart/form-data; boundary=x" },
            totalBytes: 100e6,
          }),
        ),
      ),
    );
    for (const r of result) {
      expect(r.status).toBe(401);
      expect(r.body?.code).toBe(-401);
      expect(r.sentBytes).toBeLessThan(100e6);
    }
    expect(peakMiB, "RSS growth (MiB)").toBeLessThan(48);
  });

  it("one keep-alive connection refused before its body, request after request, leaves no listener behind", async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
    process.on("warning", onWarning);
    const socket = connect(Number(new URL(d.url).port), "127.0.0.1");
    try {
      let received = "";
      socket.setEncoding("latin1");
      socket.on("data", (text: string) => (received += text));
      const body = Buffer.alloc(256 * 1024, 0x20);
      const statuses: string[] = [];
      for (let i = 0; i < 25; i++) {
        // The answer comes on the headers; the body follows it and is discarded, keeping the connection.
        socket.write(
          `POST /plugin/${T}/management/install/upload/package HTTP/1.1\r\nhost: x\r\ncontent-type: multipart/form-data; boundary=x\r\ncontent-length: ${body.length}\r\n\r\n`,
        );
        // A whole answer: chunked (its last chunk) or with a Content-Length.
        await vi.waitFor(() => expect(received).toMatch(/\r\n0\r\n\r\n$|\r\n\r\n\{[\s\S]*\}$/), {
          timeout: 5000,
          interval: 5,
        });
        statuses.push(received.slice(9, 12));
        received = "";
        await new Promise<void>((resolve) => socket.write(body, () => resolve()));
      }
      expect(statuses).toEqual(Array(25).fill("401"));
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings.filter((w) => w.startsWith("MaxListenersExceededWarning"))).toEqual([]);
    } finally {
      process.off("warning", onWarning);
      socket.destroy();
    }
  });

  it("an authenticated 100 MB JSON body is refused by its Content-Length with 413 and -400", async () => {
    const { result, peakMiB } = await rssGrowth(() =>
      send({
        path: `/plugin/${T}/management/install/identifiers`,
        headers: { "x-api-key": TEST_KEY },
        totalBytes: 100e6,
      }),
    );
    expect(result.status).toBe(413);
    expect(result.body?.code).toBe(-400);
    expect(errorText(result.body as Envelope)).toBe("request body too large: at most 10485760 bytes");
    expect(peakMiB).toBeLessThan(48);
  });

  it("a chunked JSON body (no Content-Length) is cut at the 10 MiB cap", async () => {
    const { result, peakMiB } = await rssGrowth(() =>
      send({
        path: `/plugin/${T}/dispatch/tool/invoke`,
        headers: { "x-api-key": TEST_KEY, ...dispatchHeaders },
        totalBytes: 100e6,
        contentLength: false,
      }),
    );
    expect(result.status).toBe(413);
    expect(result.body?.code).toBe(-400);
    expect(result.sentBytes).toBeLessThan(100e6);
    expect(peakMiB).toBeLessThan(64);
  });

  it("an authenticated chunked 100 MB upload is cut at the package limit with upstream's message", async () => {
    const { result, peakMiB } = await rssGrowth(() =>
      send({
        path: `/plugin/${T}/management/install/upload/package`,
        headers: { "x-api-key": TEST_KEY, "content-type": "multipart/form-data; boundary=x" },
        totalBytes: 100e6,
        contentLength: false,
      }),
    );
    expect(result.status).toBe(413);
    expect(errorText(result.body as Envelope)).toBe("file size exceeds the maximum limit");
    expect(peakMiB).toBeLessThan(96);
  });

  it("uploads beyond MAX_CONCURRENT_UPLOADS (2) get a clear 503 while the others proceed", async () => {
    const slow = (n: number) =>
      send({
        path: `/plugin/${T}/management/install/upload/package`,
        headers: { "x-api-key": TEST_KEY, "content-type": "multipart/form-data; boundary=x" },
        totalBytes: 4 * MiB,
        chunkBytes: 256 * 1024,
        intervalMs: 50 + n,
      });
    const first = [slow(0), slow(1)];
    await new Promise((r) => setTimeout(r, 200));
    const third = await slow(2);
    expect(third.status).toBe(503);
    expect(errorText(third.body as Envelope)).toMatch(/^server is busy: 2 uploads in progress/);
    for (const r of await Promise.all(first)) expect(r.status).not.toBe(503);
  });
});

describe("slow bodies", () => {
  it("a body that trickles in (but never stalls) is served", async () => {
    const json = Buffer.from(JSON.stringify({ plugin_unique_identifiers: ["not-an-identifier"], source: "package" }));
    const res = await send({
      path: `/plugin/${T}/management/install/identifiers`,
      headers: { "x-api-key": TEST_KEY },
      body: json,
      totalBytes: json.length,
      chunkBytes: 8,
      intervalMs: 40,
    });
    // Served (the body was read whole): the identifier's own validation answers.
    expect(res.status).toBe(400);
    expect(errorText(res.body as Envelope)).toContain("plugin_unique_identifier is not valid");
  });

  it("a body that stalls gets 408 after the idle timeout, and other callers are served meanwhile", async () => {
    const stalled = send({
      path: `/plugin/${T}/management/install/identifiers`,
      headers: { "x-api-key": TEST_KEY },
      totalBytes: 1000,
      stallAfterBytes: 10,
      chunkBytes: 10,
    });
    const started = Date.now();
    expect((await fetch(`${d.url}/health/check`)).status).toBe(200);
    expect(Date.now() - started).toBeLessThan(500);
    const res = await stalled;
    expect(res.status).toBe(408);
    expect(res.body?.code).toBe(-400);
    expect(res.ms).toBeGreaterThanOrEqual(IDLE_MS - 100);
  });

  it("a stalled upload is a 408 too, and frees its upload slot", async () => {
    const res = await send({
      path: `/plugin/${T}/management/install/upload/package`,
      headers: { "x-api-key": TEST_KEY, "content-type": "multipart/form-data; boundary=x" },
      totalBytes: 1000,
      stallAfterBytes: 100,
      chunkBytes: 100,
    });
    expect(res.status).toBe(408);
    expect(errorText(res.body as Envelope)).toMatch(/^request body timed out/);
  });
});

describe("huge plugin output lines", () => {
  it("a 50 MB answer line ends its session with an error naming the cap; the plugin keeps serving and memory stays flat", async () => {
    const { result, peakMiB, afterMiB } = await rssGrowth(async () => {
      const all = [];
      for (let i = 0; i < 3; i++) all.push(await readEvents(await invoke({ megabytes: 50 })));
      return all;
    });
    for (const events of result) {
      expect(events).toHaveLength(1);
      expect(events[0]?.code).toBe(-500);
      const outer = JSON.parse(events[0]?.message ?? "{}") as { error_type: string; message: string };
      expect(outer.error_type).toBe("PluginInvokeError");
      expect(JSON.parse(outer.message)).toMatchObject({
        error_type: "PluginRuntimeError",
        message:
          "plugin output line exceeds the maximum of 5242880 bytes (PLUGIN_RUNTIME_MAX_BUFFER_SIZE) and was dropped",
      });
    }
    expect(peakMiB).toBeLessThan(64);
    expect(afterMiB).toBeLessThan(48);
    const after = await readEvents(await invoke({ megabytes: 0.001 }));
    expect(after.at(-1)?.code).toBe(0);
  }, 60_000);

  it("an answer just under the cap arrives whole, and repeating it does not pile up memory", async () => {
    const answer = async () => {
      const events = await readEvents(await invoke({ megabytes: 4.5 }));
      return (events.at(-1)?.data as { message: { text: string } }).message.text;
    };
    const { result, peakMiB } = await rssGrowth(async () => {
      expect((await answer()).length).toBe(4.5 * MiB);
      const afterOne = retainedMiB();
      for (let i = 0; i < 5; i++) expect((await answer()).length).toBe(4.5 * MiB);
      return retainedMiB() - afterOne;
    });
    // Six answers keep no more than one did: nothing of an answer stays behind once it is sent.
    // Keeping each would be 22.5 MiB more; the bound (three answers' worth) leaves room for what
    // the rest of this shared test process allocates meanwhile (9.1 MiB was seen on a clean run).
    expect(result, "memory kept after six answers vs one (MiB)").toBeLessThan(3 * 4.5);
    expect(peakMiB).toBeLessThan(160);
  }, 60_000);

  it("a huge stray print (not a protocol line) is dropped and the session still answers", async () => {
    const events = await readEvents(await invoke({ megabytes: 20, stray: true }));
    expect(events.at(-1)?.code).toBe(0);
    expect((events.at(-1)?.data as { message: { text: string } }).message.text).toBe("done");
  }, 60_000);
});

describe("remote-debugging port", () => {
  const port = () => (debugging.address() as AddressInfo).port;

  /** Streams `bytes` without a newline (after `prefix`) and collects what the server says until it closes. */
  function flood(prefix: string, bytes: number): Promise<{ said: string; sent: number }> {
    return new Promise((resolve) => {
      const socket = connect(port(), "127.0.0.1");
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      let said = "";
      let sent = 0;
      let closed = false;
      socket.on("data", (c) => (said += c.toString("utf8")));
      socket.on("error", () => undefined);
      socket.on("close", () => {
        closed = true;
        resolve({ said, sent });
      });
      socket.write(prefix);
      const pump = () => {
        while (!closed && sent < bytes) {
          sent += chunk.length;
          if (!socket.write(chunk)) return void socket.once("drain", pump);
        }
        if (!closed) socket.end();
      };
      pump();
    });
  }

  it("an endless line before the handshake is cut at 64 KiB with a message, at no memory cost", async () => {
    const { result, peakMiB } = await rssGrowth(() => flood("", 200 * MiB));
    expect(result.said).toBe("handshake failed, message too large (at most 65536 bytes)\n");
    expect(result.sent).toBeLessThan(200 * MiB);
    expect(peakMiB).toBeLessThan(32);
    const res = await d.call(`/plugin/${T}/management/list?page=1&page_size=10`);
    expect(res.status).toBe(200);
  });

  it("a peer that goes on writing before it reads is still told why it was cut off", async () => {
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const socket = connect(port(), "127.0.0.1");
    socket.pause();
    const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
    socket.on("error", () => undefined);
    const chunk = Buffer.alloc(96 * 1024, 0x61);
    socket.write(chunk);
    await sleep(150);
    // The server has cut the line by now. Writing again meets a reset if it already closed, and
    // a socket whose write failed is gone before it reads what it was told.
    for (let i = 0; i < 3; i++) {
      socket.write(chunk);
      await sleep(50);
    }
    let said = "";
    socket.on("data", (c: Buffer) => {
      said += c.toString("utf8");
    });
    socket.resume();
    await closed;
    expect(said).toBe("handshake failed, message too large (at most 65536 bytes)\n");
  });

  it("after a valid handshake a registration line is capped at PLUGIN_RUNTIME_MAX_BUFFER_SIZE", async () => {
    const key = (
      (await (await d.call(`/plugin/${T}/debugging/key`, { method: "POST" })).json()) as { data: { key: string } }
    ).data.key;
    const handshake = `${JSON.stringify({ type: "handshake", data: { key } })}\n`;
    const { said } = await flood(handshake, 8 * MiB);
    expect(said).toBe("registration failed, message too large (at most 5242880 bytes)\n");
  });
});
