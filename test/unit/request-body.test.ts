/**
 * Reading a request body on the local daemon: a body that came with its headers is taken as it is
 * one microtask after the request event (no listener, no idle timer); one still arriving is not
 * taken early, and the listener-based read then gets all of it. Real HTTP over a socket.
 */
import { createServer, type IncomingMessage } from "node:http";
import { connect } from "node:net";
import { afterEach, expect, it } from "vitest";
import { arrivedBody, readBody, requestBody } from "../../src/local/request-body.js";

type Seen = {
  arrived?: ReturnType<typeof arrivedBody>;
  read?: Awaited<ReturnType<typeof readBody>>;
  whole?: Awaited<ReturnType<typeof requestBody>>;
};

const servers: Array<{ close(): void }> = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

/**
 * Sends raw request bytes (each part in its own write, `gapMs` apart) and reports what the server
 * saw: through requestBody (`whole`), or through its two steps, one microtask after the request
 * event as requestBody looks.
 */
async function send(parts: string[], gapMs = 0, whole = false): Promise<Seen> {
  let seen!: (s: Seen) => void;
  const result = new Promise<Seen>((resolve) => (seen = resolve));
  const server = createServer(async (req: IncomingMessage, res) => {
    if (whole) {
      seen({ whole: await requestBody(req, 1024, 5_000) });
    } else {
      await undefined;
      const arrived = arrivedBody(req, 1024);
      const read = arrived ? undefined : await readBody(req, 1024, 5_000);
      seen({ arrived, ...(read && { read }) });
    }
    res.end("ok");
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const { port } = server.address() as { port: number };
  const socket = connect(port, "127.0.0.1");
  socket.on("data", () => socket.end());
  for (const part of parts) {
    socket.write(part);
    if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
  }
  return result;
}

const head = (length: number) =>
  `POST /x HTTP/1.1\r\nhost: a\r\ncontent-type: application/json\r\ncontent-length: ${length}\r\n\r\n`;

it("takes a body that arrived with its headers at once", async () => {
  const body = JSON.stringify({ user_id: "u", data: { text: "hello" } });
  const seen = await send([head(body.length) + body]);
  expect(seen.arrived?.ok && seen.arrived.body.toString()).toBe(body);
});

it("takes no body at once from a request that declares none", async () => {
  const seen = await send(["GET /x HTTP/1.1\r\nhost: a\r\n\r\n"]);
  expect(seen.arrived?.ok && seen.arrived.body.length).toBe(0);
});

it("leaves a body still arriving to the read, which gets all of it", async () => {
  const seen = await send([`${head(10)}01234`, "56789"], 30);
  expect(seen.arrived).toBeUndefined();
  expect(seen.read?.ok && seen.read.body.toString()).toBe("0123456789");
});

it("leaves a chunked body to the read", async () => {
  const chunked = "POST /x HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
  const seen = await send([chunked]);
  expect(seen.arrived).toBeUndefined();
  expect(seen.read?.ok && seen.read.body.toString()).toBe("hello");
});

it("answers the whole body however it arrives", async () => {
  const body = JSON.stringify({ user_id: "u", data: {} });
  const single = await send([head(body.length) + body], 0, true);
  const split = await send([head(body.length) + body.slice(0, 5), body.slice(5)], 30, true);
  expect(single.whole?.ok && single.whole.body.toString()).toBe(body);
  expect(split.whole?.ok && split.whole.body.toString()).toBe(body);
});
