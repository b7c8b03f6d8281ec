/**
 * A trivial HTTP server that answers any POST with a canned SSE body shaped like a dispatch
 * response: 5 events like the echo tool's, or `tool_parameters.count` text chunks when the request
 * names the stream_chunks tool. It does no other work, so load against it shows the most the load
 * client (bench/load.ts) can drive on this machine, and what the client costs per request.
 *
 *   tsx bench/ceiling-server.ts [--port 0]    prints {"port": N} on stdout once listening
 */
import { createServer } from "node:http";

const envelope = (data: unknown) => `data: ${JSON.stringify({ code: 0, message: "success", data })}\n\n`;

const ECHO_BODY = [
  envelope({ type: "text", message: { text: "hello" }, meta: null }),
  envelope({ type: "json", message: { json_object: { echo: "hello" } }, meta: null }),
  envelope({
    type: "variable",
    message: { stream: false, variable_name: "echo", variable_value: "hello" },
    meta: null,
  }),
  envelope({
    type: "blob_chunk",
    message: { blob: "aGVsbG8=", end: false, id: "0".repeat(32), sequence: 0, total_length: 5 },
    meta: { mime_type: "text/plain" },
  }),
  envelope({
    type: "blob_chunk",
    message: { blob: "", end: true, id: "0".repeat(32), sequence: 1, total_length: 5 },
    meta: { mime_type: "text/plain" },
  }),
].join("");

const chunkBodies = new Map<number, string[]>();
function chunks(count: number): string[] {
  let body = chunkBodies.get(count);
  if (!body) {
    body = Array.from({ length: count }, (_, i) =>
      envelope({ type: "text", message: { text: `chunk-${i}` }, meta: null }),
    );
    chunkBodies.set(count, body);
  }
  return body;
}

const portArg = process.argv.indexOf("--port");
const port = portArg > 0 ? Number(process.argv[portArg + 1]) : 0;

const server = createServer((req, res) => {
  const parts: Buffer[] = [];
  req.on("data", (c: Buffer) => parts.push(c));
  req.on("end", () => {
    let count = 0;
    try {
      const body = JSON.parse(Buffer.concat(parts).toString("utf8")) as {
        data?: { tool?: string; tool_parameters?: { count?: number } };
      };
      if (body.data?.tool === "stream_chunks") count = Number(body.data.tool_parameters?.count ?? 0);
    } catch {
      // not JSON: answer like echo
    }
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    if (count > 0) {
      // One write per event, as a daemon relaying a plugin's stream does.
      for (const event of chunks(count)) res.write(event);
      res.end();
    } else {
      res.end(ECHO_BODY);
    }
  });
});
server.keepAliveTimeout = 65_000;
server.listen(port, "127.0.0.1", () => {
  const address = server.address();
  process.stdout.write(`${JSON.stringify({ port: typeof address === "object" && address ? address.port : port })}\n`);
});
const stop = () => server.close(() => process.exit(0));
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
// Never outlive the benchmark that started it.
setTimeout(() => process.exit(0), 15 * 60_000).unref();
