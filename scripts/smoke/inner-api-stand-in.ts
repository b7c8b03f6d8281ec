/**
 * A stand-in for the two parts of Dify's inner API (`/inner/api/*`) the smoke test reaches through
 * the daemon, in Dify's formats: endpoint settings encryption (`invoke/encrypt`: the settings come
 * back as they went in, as Dify does for non-secret fields) and a streamed LLM answer
 * (`invoke/llm`: `{"data": LLMResultChunk, "error": ""}` documents, one per line). It checks
 * X-Inner-Api-Key like Dify, when given one, and counts what it answered.
 *
 * Point the daemon's DIFY_INNER_API_URL (the stack's difyInnerApiUrl) at it to check backwards
 * invocation and endpoints without a Dify; against a real Dify, leave it off.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export const STAND_IN_ANSWER = ["pong", " from", " the", " stand-in"];

export interface InnerApiStandIn {
  url: string;
  /** Requests answered, by path (`invoke/llm`, ...). */
  answered: Map<string, number>;
  stop(): Promise<void>;
}

function chunk(model: string, index: number, content: string, last: boolean) {
  return {
    data: {
      model,
      prompt_messages: [],
      system_fingerprint: null,
      delta: {
        index,
        message: { role: "assistant", content, tool_calls: [] },
        ...(last && {
          finish_reason: "stop",
          usage: {
            prompt_tokens: 1,
            prompt_unit_price: 0,
            prompt_price_unit: 0,
            prompt_price: 0,
            completion_tokens: STAND_IN_ANSWER.length,
            completion_unit_price: 0,
            completion_price_unit: 0,
            completion_price: 0,
            total_tokens: STAND_IN_ANSWER.length + 1,
            total_price: 0,
            currency: "USD",
            latency: 0.01,
          },
        }),
      },
    },
    error: "",
  };
}

export async function startInnerApiStandIn(
  host: string,
  port: number,
  key: string | undefined,
): Promise<InnerApiStandIn> {
  const answered = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on("data", (d: Buffer) => parts.push(d));
    req.on("end", () => {
      const path = (req.url ?? "").split("?")[0]!.replace(/^\/inner\/api\//, "");
      // Dify answers an unknown route or a wrong key with 404.
      if (!req.url?.startsWith("/inner/api/") || (key !== undefined && req.headers["x-inner-api-key"] !== key)) {
        res.writeHead(404, { "content-type": "text/html" }).end("<h1>Not Found</h1>");
        return;
      }
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(Buffer.concat(parts).toString("utf8") || "{}") as Record<string, unknown>;
      } catch {
        res
          .writeHead(400, { "content-type": "application/json" })
          .end(JSON.stringify({ code: "invalid_param", message: "body is not JSON", status: 400 }));
        return;
      }
      answered.set(path, (answered.get(path) ?? 0) + 1);
      if (path === "invoke/encrypt") {
        const data = body.opt === "clear" ? {} : ((body.data as Record<string, unknown> | null) ?? {});
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ data: { data }, error: "" }));
        return;
      }
      if (path === "invoke/llm") {
        res.writeHead(200, { "content-type": "text/event-stream" });
        const model = String(body.model ?? "stand-in");
        STAND_IN_ANSWER.forEach((word, i) =>
          res.write(`${JSON.stringify(chunk(model, i, word, i === STAND_IN_ANSWER.length - 1))}\n\n`),
        );
        res.end();
        return;
      }
      res.writeHead(404, { "content-type": "text/html" }).end("<h1>Not Found</h1>");
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, resolve);
  });
  const address = server.address() as AddressInfo;
  return {
    url: `http://${host === "0.0.0.0" ? "127.0.0.1" : host}:${address.port}`,
    answered,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
