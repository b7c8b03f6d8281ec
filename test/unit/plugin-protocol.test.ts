import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { z } from "zod";
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

/** The protocol's schema as it was written with zod: the oracle the hand-written checks must match. */
const errorData = z.object({
  error_type: z.string().default("unknown"),
  message: z.string().default(""),
  args: z.record(z.string(), z.unknown()).nullish(),
});
const sessionMessage = z.discriminatedUnion("type", [
  z.object({ type: z.literal("stream"), data: z.unknown() }),
  z.object({
    type: z.literal("invoke"),
    data: z.object({
      type: z.string(),
      backwards_request_id: z.string(),
      request: z.record(z.string(), z.unknown()).default({}),
    }),
  }),
  z.object({ type: z.literal("error"), data: errorData }),
  z.object({ type: z.literal("end"), data: z.unknown().optional() }),
]);
const zodEvent = z.discriminatedUnion("event", [
  z.object({ event: z.literal("session"), session_id: z.string(), data: sessionMessage }),
  z.object({ event: z.literal("heartbeat") }).loose(),
  z
    .object({
      event: z.literal("log"),
      data: z.object({ level: z.string().default("INFO"), message: z.string().default("") }).loose(),
    })
    .loose(),
  z.object({ event: z.literal("error"), data: z.unknown() }).loose(),
]);

describe("the protocol checks", () => {
  // Values near the protocol's shapes: the right keys with right, wrong, null and missing values.
  const scalar = fc.oneof(fc.string({ maxLength: 4 }), fc.integer(), fc.constant(null), fc.boolean());
  const anyJson = fc.oneof(
    scalar,
    fc.array(scalar, { maxLength: 2 }),
    fc.dictionary(fc.string({ maxLength: 3 }), scalar),
  );
  const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(fc.oneof(arb, anyJson), { nil: undefined });
  const shaped = <T extends Record<string, fc.Arbitrary<unknown>>>(fields: T) =>
    fc.record(Object.fromEntries(Object.entries(fields).map(([k, a]) => [k, maybe(a)])) as T, {
      requiredKeys: [],
    });
  const record = fc.dictionary(fc.constantFrom("a", "b", "__proto__", "level"), scalar, { maxKeys: 3 });
  const message = fc.oneof(
    shaped({ type: fc.constant("stream"), data: anyJson }),
    shaped({ type: fc.constant("end"), data: anyJson }),
    shaped({
      type: fc.constant("error"),
      data: shaped({ error_type: fc.string(), message: fc.string(), args: fc.oneof(record, fc.constant(null)) }),
    }),
    shaped({
      type: fc.constant("invoke"),
      data: shaped({ type: fc.string(), backwards_request_id: fc.string(), request: record }),
    }),
  );
  const event = fc.oneof(
    shaped({ event: fc.constant("session"), session_id: fc.string(), data: message, extra: scalar }),
    shaped({ event: fc.constant("heartbeat"), session_id: scalar, data: anyJson }),
    shaped({
      event: fc.constant("log"),
      data: shaped({ level: fc.string(), message: fc.string(), timestamp: fc.integer() }),
      extra: scalar,
    }),
    shaped({ event: fc.constantFrom("error", "other"), data: anyJson }),
    anyJson,
  );

  it("accept and give exactly what the zod schema does", () => {
    fc.assert(
      fc.property(event, (value) => {
        const line = JSON.stringify(value) ?? "";
        const parsed = zodEvent.safeParse(JSON.parse(line || "null"));
        expect(parsePluginEvents(line)).toEqual(parsed.success && line.startsWith("{") ? [parsed.data] : []);
      }),
      { numRuns: 3000 },
    );
  });
});
