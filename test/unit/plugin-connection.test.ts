/**
 * A session leaves its connection however it ends. Found with real plugins: after a plugin error
 * the dispatcher stops reading (closing the output) before it aborts, and the session stayed
 * open for good, so every uninstall of that plugin waited out the whole drain timeout.
 */
import { describe, expect, it } from "vitest";
import { PluginConnection } from "../../src/adapters/local/plugin-connection.js";
import type { InvokeOptions, PluginRequest } from "../../src/ports/plugin-runtime.js";

const request = (id: string): PluginRequest => ({
  session_id: id,
  event: "request",
  data: { type: "tool", action: "invoke_tool" },
});
const options = (signal: AbortSignal): InvokeOptions => ({
  signal,
  tenantId: "t",
  backwards: async function* () {},
});
const line = (sessionId: string, data: unknown) => JSON.stringify({ event: "session", session_id: sessionId, data });
const settle = () => new Promise((r) => setTimeout(r, 10));

describe("a plugin connection's sessions", () => {
  it("end when the consumer stops reading after the plugin's error, before any abort or late end", async () => {
    const connection = new PluginConnection("fixtures/p:0.0.1@x", () => undefined);
    const abort = new AbortController();
    const outputs = connection.invoke(request("s1"), options(abort.signal));
    await settle();
    expect(connection.openSessions).toBe(1);
    connection.handleLine(
      line("s1", { type: "error", data: { error_type: "PluginInvokeError", message: "boom" } }),
      () => undefined,
    );
    for await (const output of outputs) {
      expect(output.type).toBe("error");
      break;
    }
    expect(connection.openSessions).toBe(0);
    abort.abort();
    connection.handleLine(line("s1", { type: "end" }), () => undefined);
    expect(connection.openSessions).toBe(0);
    await expect(connection.whenIdle()).resolves.toBeUndefined();
  });

  it("end on abort, on the plugin's end, and when the transport closes", async () => {
    const connection = new PluginConnection("fixtures/p:0.0.1@x", () => undefined);
    const aborted = new AbortController();
    connection.invoke(request("a"), options(aborted.signal));
    const ended = connection.invoke(request("b"), options(new AbortController().signal));
    const orphaned = connection.invoke(request("c"), options(new AbortController().signal));
    await settle();
    expect(connection.openSessions).toBe(3);
    aborted.abort();
    connection.handleLine(line("b", { type: "end" }), () => undefined);
    expect(connection.openSessions).toBe(1);
    connection.closeAll("plugin process exited");
    expect(connection.openSessions).toBe(0);
    const last = [];
    for await (const output of orphaned) last.push(output);
    expect(last.at(0)).toMatchObject({ type: "error" });
    expect(last.at(-1)).toEqual({ type: "end" });
    void ended;
  });

  it("are written the moment they are invoked, and one whose caller already left is never written", async () => {
    const written: string[] = [];
    const connection = new PluginConnection("fixtures/p:0.0.1@x", (l) => written.push(l));
    connection.invoke(request("now"), options(new AbortController().signal));
    expect(written.map((l) => JSON.parse(l).session_id)).toEqual(["now"]);
    const gone = new AbortController();
    gone.abort();
    const outputs = connection.invoke(request("gone"), options(gone.signal));
    const seen = [];
    for await (const output of outputs) seen.push(output.type);
    expect(seen).toEqual(["end"]);
    expect(written).toHaveLength(1);
    expect(connection.openSessions).toBe(1);
  });
});
