import { describe, expect, it } from "vitest";
import { parsePluginEvents } from "../../src/domain/plugin-protocol.js";

describe("reading plugin output lines", () => {
  it("reads a session stream event", () => {
    const [event] = parsePluginEvents(
      '{"event":"session","session_id":"s1","data":{"type":"stream","data":{"type":"text","message":{"text":"hi"}}}}',
    );
    expect(event).toMatchObject({ event: "session", session_id: "s1", data: { type: "stream" } });
  });

  it("reads two events the SDK wrote onto one line, braces inside strings included", () => {
    const line =
      '{"event":"session","session_id":"a","data":{"type":"stream","data":{"text":"}{ \\" }"}}}' +
      '{"event":"session","session_id":"b","data":{"type":"end","data":{}}}';
    const events = parsePluginEvents(line);
    expect(events.map((e) => (e as { session_id: string }).session_id)).toEqual(["a", "b"]);
  });

  it("ignores the manifest printed at start and other non-events", () => {
    expect(parsePluginEvents('{"version":"0.0.1","type":"plugin","name":"x"}')).toEqual([]);
    expect(parsePluginEvents("Serving Flask app")).toEqual([]);
    expect(parsePluginEvents("")).toEqual([]);
  });

  it("reads heartbeats and logs without a session id", () => {
    expect(parsePluginEvents('{"event":"heartbeat","session_id":null,"data":{}}')[0]?.event).toBe("heartbeat");
    expect(
      parsePluginEvents('{"event": "log", "data": {"level": "INFO", "message": "m", "timestamp": 1}}')[0],
    ).toMatchObject({ event: "log" });
  });
});
