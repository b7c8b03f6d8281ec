/**
 * Post-deploy smoke test: every path Dify uses, against a running daemon (the AWS stack after
 * `cdk deploy`, or the local daemon), with a plugin packed here at run time.
 *
 *   npm run smoke -- --url <PluginDaemonUrl> --key <daemon key>
 *   npm run smoke -- --url http://127.0.0.1:5002 --key <SERVER_KEY> --inner-api-stand-in 8089
 *
 * Paths: health, auth, upload, install, a streamed tool call, a backwards LLM call into Dify (or
 * the stand-in this script can serve), a public endpoint, plugin storage over 64 KiB, a 5 MB
 * request, uninstall. Plugin paths run twice: cold (the first call after the install) and warm.
 * Prints one line per path with pass/fail and timings; exits 1 if any path failed.
 */
import { randomUUID } from "node:crypto";
import { Command, InvalidArgumentError } from "commander";
import { packSmokePlugin, SMOKE_PLUGIN_ID } from "./smoke/fixture-plugin.js";
import { type InnerApiStandIn, STAND_IN_ANSWER, startInnerApiStandIn } from "./smoke/inner-api-stand-in.js";
import { SMOKE_PATHS } from "./smoke/paths.js";

interface Options {
  url: string;
  key: string;
  tenant: string;
  innerApiStandIn?: { host: string; port: number };
  innerApiKey?: string;
  llmProvider: string;
  llmModel: string;
  skip: string[];
  installTimeout: number;
  json: boolean;
}

interface Outcome {
  path: string;
  ok: boolean;
  coldMs?: number;
  warmMs?: number;
  detail: string;
}

interface Envelope {
  code: number;
  message: string;
  data: any;
}

const LARGE_REQUEST_BYTES = 5 * 1024 * 1024;
const STORAGE_BYTES = 100 * 1024;

class SmokeFailure extends Error {}
const check = (condition: unknown, message: string): void => {
  if (!condition) throw new SmokeFailure(message);
};

function parseArgs(argv: string[]): Options {
  const integer = (value: string) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError("expected a positive integer");
    return n;
  };
  const hostPort = (value: string) => {
    const match = /^(?:(.+):)?(\d+)$/.exec(value);
    if (!match) throw new InvalidArgumentError("expected [host:]port");
    return { host: match[1] ?? "0.0.0.0", port: Number(match[2]) };
  };
  const program = new Command("smoke")
    .description(
      "Runs every path of a deployed Dify plugin daemon with a plugin packed at run time; exits 1 on any failure.",
    )
    .requiredOption("--url <url>", "the daemon's URL (PluginDaemonUrl; http://127.0.0.1:5002 locally)")
    .option("--key <key>", "the daemon key (Dify's PLUGIN_DAEMON_KEY)", process.env.PLUGIN_DAEMON_KEY)
    .option("--tenant <id>", "tenant to install into (default: a fresh one per run)", randomUUID())
    .option(
      "--inner-api-stand-in <[host:]port>",
      "serve a Dify inner-API stand-in here; the daemon's DIFY_INNER_API_URL must point at it",
      hostPort,
    )
    .option("--inner-api-key <key>", "the key the stand-in expects (the daemon's DIFY_INNER_API_KEY)")
    .option(
      "--llm-provider <provider>",
      "model provider for the backwards call (a real Dify needs one the tenant has)",
      "smoke/stand-in/llm",
    )
    .option("--llm-model <model>", "model for the backwards call", "stand-in-chat")
    .option(
      "--skip <paths>",
      `comma-separated paths to leave out (${SMOKE_PATHS.join(", ")})`,
      (v: string) =>
        v
          .split(",")
          .map((s) => s.trim())
          .filter(Boolean),
      [] as string[],
    )
    .option("--install-timeout <seconds>", "how long the install may take", integer, 900)
    .option("--json", "print the outcomes as JSON", false)
    .parse(argv, { from: "user" });
  const o = program.opts<Omit<Options, "url"> & { url: string; key?: string }>();
  if (!o.key) program.error("error: --key (or PLUGIN_DAEMON_KEY) is required");
  for (const s of o.skip)
    if (!(SMOKE_PATHS as readonly string[]).includes(s)) program.error(`error: --skip: unknown path "${s}"`);
  return { ...o, url: o.url.replace(/\/+$/, ""), key: o.key! };
}

// ---------------------------------------------------------------------------------------------

class Daemon {
  constructor(private readonly o: Options) {}

  request(path: string, init: RequestInit & { json?: unknown; key?: string | null } = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (init.key !== null) headers.set("X-Api-Key", init.key ?? this.o.key);
    let body = init.body;
    if (init.json !== undefined) {
      headers.set("Content-Type", "application/json");
      body = JSON.stringify(init.json);
    }
    return fetch(`${this.o.url}${path}`, {
      ...init,
      headers,
      body,
      signal: init.signal ?? AbortSignal.timeout(660_000),
    });
  }

  async envelope(path: string, init: Parameters<Daemon["request"]>[1] = {}): Promise<Envelope> {
    const res = await this.request(path, init);
    const text = await res.text();
    try {
      return JSON.parse(text) as Envelope;
    } catch {
      throw new SmokeFailure(`HTTP ${res.status} from ${path}, not JSON: ${text.slice(0, 200)}`);
    }
  }

  management(path: string, init: Parameters<Daemon["request"]>[1] = {}): Promise<Envelope> {
    return this.envelope(`/plugin/${this.o.tenant}/management${path}`, init);
  }

  /** A tool call as Dify makes it; the streamed envelopes with when each arrived. */
  async invokeTool(tool: string, parameters: Record<string, unknown>): Promise<Array<{ data: any; atMs: number }>> {
    const started = Date.now();
    const res = await this.request(`/plugin/${this.o.tenant}/dispatch/tool/invoke`, {
      method: "POST",
      headers: { "X-Plugin-ID": SMOKE_PLUGIN_ID },
      json: {
        user_id: "smoke-user",
        data: {
          provider: "smoke",
          tool,
          credentials: {},
          credential_type: "unauthorized",
          tool_parameters: parameters,
        },
      },
    });
    if (!res.ok || !res.body)
      throw new SmokeFailure(
        `dispatch answered HTTP ${res.status}: ${(await res.text().catch(() => "")).slice(0, 300)}`,
      );
    const out: Array<{ data: any; atMs: number }> = [];
    let pending = "";
    const decoder = new TextDecoder();
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      pending += decoder.decode(chunk, { stream: true });
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        // As Dify reads it: blank lines (keep-alives) skipped, an optional "data:" prefix stripped.
        const text = line.trim().replace(/^data:\s*/, "");
        if (!text) continue;
        const envelope = JSON.parse(text) as Envelope;
        check(envelope.code === 0, `plugin error: ${envelope.message}`);
        out.push({ data: envelope.data, atMs: Date.now() - started });
      }
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------

async function timed<T>(run: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await run();
  return { value, ms: Math.round(performance.now() - started) };
}

async function runSmoke(o: Options, log: (line: string) => void): Promise<Outcome[]> {
  const daemon = new Daemon(o);
  const outcomes: Outcome[] = [];
  const state: { uid?: string; installed?: boolean; hookId?: string; endpointId?: string } = {};

  const step = async (
    path: (typeof SMOKE_PATHS)[number],
    run: () => Promise<{ detail: string; coldMs?: number; warmMs?: number }>,
    needs?: keyof typeof state,
  ) => {
    if (o.skip.includes(path)) return;
    let outcome: Outcome;
    if (needs && !state[needs]) {
      outcome = { path, ok: false, detail: `not run: needs ${needs === "installed" ? "the install" : needs}` };
    } else {
      try {
        outcome = { path, ok: true, ...(await run()) };
      } catch (err) {
        const message = err instanceof SmokeFailure ? err.message : `${(err as Error).name}: ${(err as Error).message}`;
        outcome = { path, ok: false, detail: message };
      }
    }
    outcomes.push(outcome);
    log(formatOutcome(outcome));
  };

  /** A plugin path twice: cold (first after the install), then warm. */
  const twice = async (run: () => Promise<string>) => {
    const cold = await timed(run);
    const warm = await timed(run);
    return { detail: warm.value, coldMs: cold.ms, warmMs: warm.ms };
  };

  await step("health", async () => {
    const { value, ms } = await timed(async () => {
      const res = await daemon.request("/health/check", { key: null });
      check(res.status === 200, `health answered HTTP ${res.status}`);
      return (await res.json()) as { status?: string; version?: string };
    });
    return { detail: JSON.stringify(value).slice(0, 80), coldMs: ms };
  });

  await step("auth", async () => {
    const wrong = await daemon.request(`/plugin/${o.tenant}/management/list?page=1&page_size=1`, {
      key: "not-the-daemon-key",
    });
    check(wrong.status === 401, `a wrong key got HTTP ${wrong.status}, not 401`);
    const right = await timed(() => daemon.management("/list?page=1&page_size=1"));
    check(right.value.code === 0, `the key was refused: ${right.value.message}`);
    return { detail: "wrong key 401, right key accepted", coldMs: right.ms };
  });

  await step("upload", async () => {
    const pkg = await packSmokePlugin(`${o.tenant}:${randomUUID()}`);
    const form = new FormData();
    form.set("dify_pkg", new Blob([pkg]), "daemon-smoke.difypkg");
    form.set("verify_signature", "false");
    const { value, ms } = await timed(() =>
      daemon.management("/install/upload/package", { method: "POST", body: form }),
    );
    if (value.code !== 0 && /signature/.test(value.message)) {
      throw new SmokeFailure(
        `${value.message} — the smoke plugin is unsigned: run it against a stack deployed with -c forceVerifyingSignature=false`,
      );
    }
    check(value.code === 0, `upload refused: ${value.message}`);
    state.uid = value.data.unique_identifier as string;
    return { detail: `${state.uid} (${pkg.byteLength} bytes)`, coldMs: ms };
  });

  await step(
    "install",
    async () => {
      const { value, ms } = await timed(async () => {
        const started = await daemon.management("/install/identifiers", {
          method: "POST",
          json: { plugin_unique_identifiers: [state.uid], source: "package", metas: [{}] },
        });
        check(started.code === 0, `install refused: ${started.message}`);
        if (started.data.all_installed) return "already installed";
        const deadline = Date.now() + o.installTimeout * 1000;
        for (;;) {
          const task = await daemon.management(`/install/tasks/${started.data.task_id}`);
          check(task.code === 0, `reading the install task failed: ${task.message}`);
          if (task.data.status === "success") return "installed";
          if (task.data.status === "failed")
            throw new SmokeFailure(`install failed: ${JSON.stringify(task.data.plugins?.[0]?.message ?? task.data)}`);
          check(Date.now() < deadline, `install still ${task.data.status} after ${o.installTimeout} s`);
          await new Promise((r) => setTimeout(r, 1000));
        }
      });
      state.installed = true;
      return { detail: value, coldMs: ms };
    },
    "uid",
  );

  await step(
    "stream",
    () =>
      twice(async () => {
        const events = await daemon.invokeTool("stream", { count: 5, delay_ms: 300 });
        const texts = events.map((e) => e.data?.message?.text);
        check(
          JSON.stringify(texts) === JSON.stringify(["chunk-0", "chunk-1", "chunk-2", "chunk-3", "chunk-4"]),
          `got ${JSON.stringify(texts)}`,
        );
        // Streamed, not buffered: the chunks arrived as the plugin produced them, 300 ms apart.
        const spread = events.at(-1)!.atMs - events[0]!.atMs;
        check(spread >= 900, `the 5 chunks arrived within ${spread} ms: the answer was buffered`);
        return `5 chunks over ${spread} ms`;
      }),
    "installed",
  );

  await step(
    "backwards",
    () =>
      twice(async () => {
        const events = await daemon.invokeTool("ask_llm", { provider: o.llmProvider, model: o.llmModel });
        const text = events.map((e) => e.data?.message?.text ?? "").join("");
        check(text.length > 0, "the backwards LLM call answered nothing");
        if (o.innerApiStandIn)
          check(text === STAND_IN_ANSWER.join(""), `the stand-in's answer did not come back: "${text}"`);
        return `LLM answered "${text.slice(0, 40)}"`;
      }),
    "installed",
  );

  await step(
    "endpoint",
    async () => {
      const setup = await daemon.envelope(`/plugin/${o.tenant}/endpoint/setup`, {
        method: "POST",
        json: { plugin_unique_identifier: state.uid, user_id: "smoke-user", settings: { word: "pong" }, name: "smoke" },
      });
      check(setup.code === 0, `endpoint setup failed: ${setup.message}`);
      const list = await daemon.envelope(`/plugin/${o.tenant}/endpoint/list?page=1&page_size=100`);
      const endpoint = (list.data as Array<{ id: string; hook_id: string }>)?.[0];
      check(endpoint, "the endpoint is not listed");
      state.endpointId = endpoint!.id;
      const result = await twice(async () => {
        const res = await daemon.request(`/e/${endpoint!.hook_id}/ping`, { key: null });
        const body = await res.text();
        check(
          res.status === 200 && body === "pong",
          `GET /e/{hook}/ping answered HTTP ${res.status}: ${body.slice(0, 200)}`,
        );
        return "GET /e/{hook}/ping answered pong";
      });
      await daemon.envelope(`/plugin/${o.tenant}/endpoint/remove`, {
        method: "POST",
        json: { endpoint_id: state.endpointId },
      });
      return result;
    },
    "installed",
  );

  await step(
    "storage",
    () =>
      twice(async () => {
        const events = await daemon.invokeTool("storage", { size: STORAGE_BYTES });
        const json = events.find((e) => e.data?.type === "json")?.data?.message?.json_object;
        check(
          json?.size === STORAGE_BYTES && json?.same === true,
          `storage round trip answered ${JSON.stringify(json)}`,
        );
        return `${STORAGE_BYTES} bytes stored and read back`;
      }),
    "installed",
  );

  await step(
    "large-request",
    () =>
      twice(async () => {
        const events = await daemon.invokeTool("size", { payload: "x".repeat(LARGE_REQUEST_BYTES) });
        const json = events.find((e) => e.data?.type === "json")?.data?.message?.json_object;
        check(
          json?.length === LARGE_REQUEST_BYTES,
          `the plugin saw ${JSON.stringify(json)} of a ${LARGE_REQUEST_BYTES}-byte parameter`,
        );
        return `a ${LARGE_REQUEST_BYTES}-byte parameter reached the plugin`;
      }),
    "installed",
  );

  await step(
    "uninstall",
    async () => {
      const { value, ms } = await timed(async () => {
        const list = await daemon.management("/list?page=1&page_size=256");
        const installation = (
          list.data?.list as Array<{ plugin_id: string; installation_id: string }> | undefined
        )?.find((i) => i.plugin_id === SMOKE_PLUGIN_ID);
        check(installation, "the installation is not listed");
        const removed = await daemon.management("/uninstall", {
          method: "POST",
          json: { plugin_installation_id: installation!.installation_id },
        });
        check(removed.code === 0 && removed.data === true, `uninstall failed: ${removed.message}`);
        const after = await daemon.management("/list?page=1&page_size=256");
        check(
          !(after.data?.list as Array<{ plugin_id: string }>).some((i) => i.plugin_id === SMOKE_PLUGIN_ID),
          "still listed after uninstall",
        );
        return "uninstalled";
      });
      return { detail: value, coldMs: ms };
    },
    "installed",
  );
  return outcomes;
}

const ms = (n: number | undefined) => (n === undefined ? "       -" : `${String(n).padStart(6)} ms`);
const formatOutcome = (o: Outcome) =>
  `${o.ok ? "PASS" : "FAIL"}  ${o.path.padEnd(14)} cold ${ms(o.coldMs)}  warm ${ms(o.warmMs)}  ${o.detail}`;

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2));
  let standIn: InnerApiStandIn | undefined;
  if (o.innerApiStandIn) {
    standIn = await startInnerApiStandIn(o.innerApiStandIn.host, o.innerApiStandIn.port, o.innerApiKey);
    if (!o.json) console.log(`inner-API stand-in listening on ${o.innerApiStandIn.host}:${o.innerApiStandIn.port}`);
  }
  try {
    if (!o.json) console.log(`smoke test of ${o.url}, tenant ${o.tenant}`);
    const outcomes = await runSmoke(o, o.json ? () => undefined : (line) => console.log(line));
    const failed = outcomes.filter((x) => !x.ok).length;
    if (o.json) console.log(JSON.stringify({ url: o.url, tenant: o.tenant, outcomes }, null, 2));
    else console.log(`${outcomes.length - failed} passed, ${failed} failed`);
    return failed === 0 ? 0 : 1;
  } finally {
    await standIn?.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(2);
  },
);
