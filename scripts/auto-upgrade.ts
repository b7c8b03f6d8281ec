/**
 * Auto-upgrade from the command line (docs/auto-upgrade.md, "CLI"). Talks to a running daemon
 * (local or behind API Gateway) with its key, except `check-now --cycle`, which runs one check
 * cycle in this process on the store the environment configures (like the scheduled check).
 *
 *   npx tsx scripts/auto-upgrade.ts get <tenant_id>
 *   npx tsx scripts/auto-upgrade.ts set <tenant_id> [--strategy fix_only|latest|disabled] [--time HH:MM[:SS]|<seconds>]
 *                                       [--mode all|partial|exclude] [--include org/a,org/b] [--exclude org/c]
 *   npx tsx scripts/auto-upgrade.ts exclude <tenant_id> <plugin_id>
 *   npx tsx scripts/auto-upgrade.ts check-now <tenant_id>
 *   npx tsx scripts/auto-upgrade.ts check-now --cycle [--at <ISO time>] [--slot <absolute slot>]
 *
 * Environment: DAEMON_URL (default http://127.0.0.1:5002) and SERVER_KEY (the daemon key).
 * `set` changes only the fields given; a tenant without a strategy starts from Dify's defaults.
 */
import { z } from "zod";
import {
  DEFAULT_STRATEGY,
  STRATEGY_SETTINGS,
  UPGRADE_MODES,
  type UpgradeStrategy,
} from "../src/domain/upgrade-strategy.js";

const USAGE = `usage:
  auto-upgrade get <tenant_id>
  auto-upgrade set <tenant_id> [--strategy fix_only|latest|disabled] [--time HH:MM[:SS]|<seconds>] [--mode all|partial|exclude] [--include ids] [--exclude ids]
  auto-upgrade exclude <tenant_id> <plugin_id>
  auto-upgrade check-now <tenant_id>
  auto-upgrade check-now --cycle [--at <ISO time>] [--slot <absolute slot>]`;

class UsageError extends Error {}

const envelope = z.object({ code: z.number(), message: z.string(), data: z.unknown() });

function parseArgs(argv: readonly string[]): { positional: string[]; flags: Map<string, string> } {
  const positional: string[] = [];
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === "--cycle") flags.set("cycle", "true");
    else if (arg.startsWith("--")) {
      const value = argv[i + 1];
      if (value === undefined) throw new UsageError(`${arg} needs a value`);
      flags.set(arg.slice(2), value);
      i++;
    } else positional.push(arg);
  }
  return { positional, flags };
}

/** `HH:MM`, `HH:MM:SS` (UTC) or plain seconds since 00:00 UTC. */
function parseTimeOfDay(text: string): number {
  const clock = /^(\d{1,2}):(\d{2})(?::(\d{2}))?$/.exec(text);
  const seconds = clock ? Number(clock[1]) * 3600 + Number(clock[2]) * 60 + Number(clock[3] ?? 0) : Number(text);
  if (
    !Number.isInteger(seconds) ||
    seconds < 0 ||
    seconds >= 86_400 ||
    (clock && (Number(clock[2]) > 59 || Number(clock[3] ?? 0) > 59))
  ) {
    throw new UsageError(`--time must be HH:MM[:SS] or seconds below 86400, got "${text}"`);
  }
  return seconds;
}

const list = (text: string) =>
  text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);

async function call(path: string, body?: unknown): Promise<unknown> {
  const base = (process.env.DAEMON_URL ?? "http://127.0.0.1:5002").replace(/\/+$/, "");
  const key = process.env.SERVER_KEY;
  if (!key) throw new UsageError("SERVER_KEY must be set to the daemon key");
  const res = await fetch(`${base}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { "x-api-key": key, ...(body !== undefined && { "content-type": "application/json" }) },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  const parsed = envelope.safeParse(await res.json().catch(() => undefined));
  if (!parsed.success) throw new Error(`daemon answered HTTP ${res.status} without an envelope`);
  if (parsed.data.code !== 0) throw new Error(`daemon error ${parsed.data.code}: ${parsed.data.message}`);
  return parsed.data.data;
}

const statusSchema = z.object({
  configured: z.boolean(),
  strategy: z.object({
    strategy_setting: z.enum(STRATEGY_SETTINGS),
    upgrade_time_of_day: z.number(),
    upgrade_mode: z.enum(UPGRADE_MODES),
    exclude_plugins: z.array(z.string()),
    include_plugins: z.array(z.string()),
  }),
});

async function runCycle(flags: Map<string, string>): Promise<unknown> {
  const { sharedDaemon } = await import("../src/daemon.js");
  const daemon = await sharedDaemon();
  try {
    const slot = flags.get("slot");
    const at = flags.get("at");
    return await daemon.autoUpgrade.runCycle({
      ...(slot !== undefined && { forceSlot: Number(slot) }),
      ...(at !== undefined && { at: new Date(at) }),
    });
  } finally {
    await daemon.close();
  }
}

async function main(argv: readonly string[]): Promise<unknown> {
  const { positional, flags } = parseArgs(argv);
  const [command, tenant, extra] = positional;
  const base = (t: string) => `/plugin/${encodeURIComponent(t)}/management/auto-upgrade`;
  switch (command) {
    case "get":
      if (!tenant) throw new UsageError("get needs a tenant id");
      return call(base(tenant));
    case "set": {
      if (!tenant) throw new UsageError("set needs a tenant id");
      const current = statusSchema.parse(await call(base(tenant)));
      const next: UpgradeStrategy = { ...(current.configured ? current.strategy : DEFAULT_STRATEGY) };
      for (const [flag, value] of flags) {
        if (flag === "strategy") next.strategy_setting = z.enum(STRATEGY_SETTINGS).parse(value);
        else if (flag === "time") next.upgrade_time_of_day = parseTimeOfDay(value);
        else if (flag === "mode") next.upgrade_mode = z.enum(UPGRADE_MODES).parse(value);
        else if (flag === "include") next.include_plugins = list(value);
        else if (flag === "exclude") next.exclude_plugins = list(value);
        else throw new UsageError(`unknown option --${flag}`);
      }
      return call(`${base(tenant)}/set`, next);
    }
    case "exclude":
      if (!tenant || !extra) throw new UsageError("exclude needs a tenant id and a plugin id");
      return call(`${base(tenant)}/exclude-plugin`, { plugin_id: extra });
    case "check-now":
      if (flags.has("cycle")) return runCycle(flags);
      if (!tenant) throw new UsageError("check-now needs a tenant id, or --cycle");
      return call(`${base(tenant)}/check-now`, {});
    default:
      throw new UsageError(command ? `unknown command ${command}` : "no command");
  }
}

main(process.argv.slice(2)).then(
  (result) => {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  },
  (err: unknown) => {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(
      err instanceof UsageError || err instanceof z.ZodError ? `${message}\n\n${USAGE}\n` : `${message}\n`,
    );
    process.exitCode = err instanceof UsageError ? 2 : 1;
  },
);
