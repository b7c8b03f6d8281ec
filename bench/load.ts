/**
 * Load generator for dispatch requests: a fixed number of POSTs at a fixed concurrency over
 * keep-alive connections (node:http, one socket per concurrent request), every response body
 * read to the end. Per request it records the latency (request start to last byte), the time to
 * response headers and the time to the first body byte (for SSE: the first event), and checks
 * the SSE body: status 200, no envelope with a negative code, and the expected event count.
 *
 * It also measures its own CPU use (process.cpuUsage over the measured phase), so a run can show
 * the client was not the bottleneck; bench/ceiling-server.ts gives the ceiling it can drive.
 *
 * Library: `runLoad(options)`. Command line (prints the result as JSON):
 *   tsx bench/load.ts --url http://127.0.0.1:5002/plugin/<tenant>/dispatch/tool/invoke \
 *     -H 'x-api-key: KEY' -H 'x-plugin-id: fixtures/echo-tool' \
 *     --body '{"user_id":"u","data":{"provider":"echo","tool":"echo","credentials":{},"tool_parameters":{"text":"hi"}}}' \
 *     -c 16 -n 2000 --warmup 100 [--events 5] [--max-seconds 60]
 */
import { Agent, request } from "node:http";
import { pathToFileURL } from "node:url";
import { type Percentiles, percentiles, round } from "./lib/stats.js";

export interface LoadOptions {
  url: string;
  headers: Record<string, string>;
  body: string | Buffer;
  concurrency: number;
  /** Measured requests. */
  requests: number;
  /** Requests sent first at the same concurrency and not recorded. */
  warmup: number;
  /** Stop issuing requests after this long, even if fewer than `requests` were sent. */
  maxDurationMs: number;
  /** Expected number of SSE events per response (checked when set). */
  expectEvents?: number;
  /** Per-request timeout. */
  timeoutMs?: number;
  /** Keep the per-request timings in `raw` (to merge runs with mergeLoadResults). */
  keepSamples?: boolean;
}

export interface RawTimings {
  latencyMs: number[];
  headersMs: number[];
  firstByteMs: number[];
  /** CPU the client used, in ms (user + system). */
  clientCpuMs: number;
}

export interface LoadResult {
  concurrency: number;
  requested: number;
  completed: number;
  ok: number;
  errors: number;
  errorSamples: string[];
  /** True when maxDurationMs cut the run short. */
  truncated: boolean;
  wallMs: number;
  throughputPerSecond: number;
  latencyMs: Percentiles;
  headersMs: Percentiles;
  firstByteMs: Percentiles;
  eventsPerResponse: number;
  responseBytes: number;
  client: { cpuPercentOfOneCore: number; cpuMsPerRequest: number };
  raw?: RawTimings;
}

interface Sample {
  latency: number;
  headers: number;
  firstByte: number;
  events: number;
  bytes: number;
  error?: string;
}

const DATA_PREFIX = Buffer.from("data: ");

function countEvents(body: Buffer): number {
  let count = 0;
  let at = body.indexOf(DATA_PREFIX);
  while (at !== -1) {
    if (at === 0 || body[at - 1] === 0x0a) count += 1;
    at = body.indexOf(DATA_PREFIX, at + DATA_PREFIX.length);
  }
  return count;
}

function once(
  agent: Agent,
  target: URL,
  headers: Record<string, string>,
  body: Buffer,
  expectEvents: number | undefined,
  timeoutMs: number,
): Promise<Sample> {
  return new Promise((resolve) => {
    const started = performance.now();
    let settled = false;
    const done = (sample: Sample) => {
      if (settled) return;
      settled = true;
      resolve(sample);
    };
    const fail = (error: string) =>
      done({
        latency: performance.now() - started,
        headers: Number.NaN,
        firstByte: Number.NaN,
        events: 0,
        bytes: 0,
        error,
      });
    const req = request(
      {
        host: target.hostname,
        port: target.port,
        path: `${target.pathname}${target.search}`,
        method: "POST",
        agent,
        headers: { ...headers, "content-length": String(body.length) },
      },
      (res) => {
        const headersAt = performance.now() - started;
        let firstByte = Number.NaN;
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => {
          if (Number.isNaN(firstByte)) firstByte = performance.now() - started;
          chunks.push(chunk);
        });
        res.on("error", (err) => fail(`response: ${err.message}`));
        res.on("end", () => {
          const latency = performance.now() - started;
          const all = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
          const events = countEvents(all);
          let error: string | undefined;
          if (res.statusCode !== 200) error = `HTTP ${res.statusCode}: ${all.toString("utf8").slice(0, 200)}`;
          else if (all.includes('"code":-')) error = `error envelope: ${all.toString("utf8").slice(-300)}`;
          else if (expectEvents !== undefined && events !== expectEvents)
            error = `expected ${expectEvents} events, got ${events}`;
          done({ latency, headers: headersAt, firstByte, events, bytes: all.length, error });
        });
      },
    );
    req.setTimeout(timeoutMs, () => {
      req.destroy(new Error(`timed out after ${timeoutMs} ms`));
    });
    req.on("error", (err) => fail(`request: ${err.message}`));
    req.end(body);
  });
}

async function drive(
  agent: Agent,
  options: LoadOptions,
  total: number,
  deadline: number,
  record: ((s: Sample) => void) | undefined,
) {
  const target = new URL(options.url);
  const body = Buffer.isBuffer(options.body) ? options.body : Buffer.from(options.body);
  const timeoutMs = options.timeoutMs ?? 60_000;
  let issued = 0;
  let truncated = false;
  const worker = async () => {
    for (;;) {
      if (issued >= total) return;
      if (performance.now() > deadline) {
        truncated = true;
        return;
      }
      issued += 1;
      const sample = await once(agent, target, options.headers, body, options.expectEvents, timeoutMs);
      record?.(sample);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency) }, worker));
  return { issued, truncated };
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: options.concurrency, maxFreeSockets: options.concurrency });
  try {
    const warmDeadline = performance.now() + Math.min(options.maxDurationMs, 30_000);
    await drive(agent, options, options.warmup, warmDeadline, undefined);

    const samples: Sample[] = [];
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    const { truncated } = await drive(agent, options, options.requests, started + options.maxDurationMs, (s) =>
      samples.push(s),
    );
    const wallMs = performance.now() - started;
    const cpu = process.cpuUsage(cpuBefore);
    const cpuMs = (cpu.user + cpu.system) / 1000;

    const good = samples.filter((s) => !s.error);
    const errors = samples.filter((s) => s.error);
    return {
      concurrency: options.concurrency,
      requested: options.requests,
      completed: samples.length,
      ok: good.length,
      errors: errors.length,
      errorSamples: [...new Set(errors.map((s) => s.error as string))].slice(0, 3),
      truncated,
      wallMs: round(wallMs),
      throughputPerSecond: round((good.length / wallMs) * 1000, 1),
      latencyMs: percentiles(good.map((s) => s.latency)),
      headersMs: percentiles(good.map((s) => s.headers)),
      firstByteMs: percentiles(good.map((s) => s.firstByte)),
      eventsPerResponse: good[0]?.events ?? 0,
      responseBytes: good[0]?.bytes ?? 0,
      client: {
        cpuPercentOfOneCore: round((cpuMs / wallMs) * 100, 1),
        cpuMsPerRequest: round(samples.length ? cpuMs / samples.length : Number.NaN, 3),
      },
      raw: options.keepSamples
        ? {
            latencyMs: good.map((s) => s.latency),
            headersMs: good.map((s) => s.headers),
            firstByteMs: good.map((s) => s.firstByte),
            clientCpuMs: cpuMs,
          }
        : undefined,
    };
  } finally {
    agent.destroy();
  }
}

/** Combines runs of the same scenario (made with keepSamples) as if they were one run. */
export function mergeLoadResults(runs: LoadResult[]): LoadResult {
  const first = runs[0];
  if (!first) throw new Error("mergeLoadResults: no runs");
  const all = (pick: (r: RawTimings) => number[]) => runs.flatMap((r) => (r.raw ? pick(r.raw) : []));
  const sum = (pick: (r: LoadResult) => number) => runs.reduce((a, r) => a + pick(r), 0);
  const wallMs = sum((r) => r.wallMs);
  const ok = sum((r) => r.ok);
  const completed = sum((r) => r.completed);
  const cpuMs = sum((r) => r.raw?.clientCpuMs ?? 0);
  return {
    concurrency: first.concurrency,
    requested: sum((r) => r.requested),
    completed,
    ok,
    errors: sum((r) => r.errors),
    errorSamples: [...new Set(runs.flatMap((r) => r.errorSamples))].slice(0, 3),
    truncated: runs.some((r) => r.truncated),
    wallMs: round(wallMs),
    throughputPerSecond: round((ok / wallMs) * 1000, 1),
    latencyMs: percentiles(all((r) => r.latencyMs)),
    headersMs: percentiles(all((r) => r.headersMs)),
    firstByteMs: percentiles(all((r) => r.firstByteMs)),
    eventsPerResponse: first.eventsPerResponse,
    responseBytes: first.responseBytes,
    client: {
      cpuPercentOfOneCore: round((cpuMs / wallMs) * 100, 1),
      cpuMsPerRequest: round(cpuMs / Math.max(1, completed), 3),
    },
  };
}

function parseCli(argv: string[]): LoadOptions {
  const options: LoadOptions = {
    url: "",
    headers: {},
    body: "{}",
    concurrency: 1,
    requests: 100,
    warmup: 10,
    maxDurationMs: 60_000,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`load: ${arg} needs a value`);
      return v;
    };
    if (arg === "--url") options.url = value();
    else if (arg === "-H" || arg === "--header") {
      const h = value();
      const colon = h.indexOf(":");
      options.headers[h.slice(0, colon).trim().toLowerCase()] = h.slice(colon + 1).trim();
    } else if (arg === "--body") options.body = value();
    else if (arg === "-c" || arg === "--concurrency") options.concurrency = Number(value());
    else if (arg === "-n" || arg === "--requests") options.requests = Number(value());
    else if (arg === "--warmup") options.warmup = Number(value());
    else if (arg === "--events") options.expectEvents = Number(value());
    else if (arg === "--max-seconds") options.maxDurationMs = Number(value()) * 1000;
    else throw new Error(`load: unknown argument ${arg}`);
  }
  if (!options.url) throw new Error("load: --url is required");
  options.headers["content-type"] ??= "application/json";
  return options;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  runLoad(parseCli(process.argv.slice(2))).then(
    (result) => console.log(JSON.stringify(result, null, 2)),
    (err: unknown) => {
      console.error(err instanceof Error ? err.message : err);
      process.exit(1);
    },
  );
}
