/**
 * Lambda, invoked by an EventBridge rule every 15 minutes: the auto-upgrade check
 * (src/services/auto-upgrade.ts). When the tenants of a slot take longer than this invocation
 * has, it stops between batches with time to spare and invokes itself asynchronously with the
 * cursor; the continuation reuses the cached marketplace snapshot.
 *
 * Events: EventBridge's "Scheduled Event" (its `time` picks the slot), the continuation sent by
 * this handler, or `{ "kind": "auto-upgrade-run", "absolute_slot"?: n, "at"?: iso }` by hand.
 */
import middy from "@middy/core";
import type { Context } from "aws-lambda";
import { z } from "zod";
import { type Daemon, sharedDaemon } from "../src/daemon.js";
import { logger } from "../src/logger.js";
import { lambdaObservability } from "../src/observability/lambda.js";
import type { CycleReport } from "../src/services/auto-upgrade.js";

const cursorSchema = z.object({
  run_id: z.string().min(1),
  slots: z.array(z.number().int()).min(1),
  shard: z.number().int().min(0),
  after: z.string().optional(),
});

const continuationSchema = z.object({
  kind: z.literal("auto-upgrade-continuation"),
  hop: z.number().int().min(1),
  cursor: cursorSchema,
});
export type ContinuationEvent = z.infer<typeof continuationSchema>;

const manualSchema = z.object({
  kind: z.literal("auto-upgrade-run"),
  absolute_slot: z.number().int().optional(),
  at: z.iso.datetime().optional(),
});
const scheduledSchema = z.looseObject({ "detail-type": z.literal("Scheduled Event"), time: z.iso.datetime() });

type CheckEvent =
  | { type: "continuation"; event: ContinuationEvent }
  | { type: "manual"; event: z.infer<typeof manualSchema> }
  | { type: "scheduled"; event: z.infer<typeof scheduledSchema> };

function parseEvent(raw: unknown): CheckEvent {
  const continuation = continuationSchema.safeParse(raw);
  if (continuation.success) return { type: "continuation", event: continuation.data };
  const manual = manualSchema.safeParse(raw);
  if (manual.success) return { type: "manual", event: manual.data };
  return { type: "scheduled", event: scheduledSchema.parse(raw) };
}

export interface UpgradeCheckHandlerOptions {
  daemon?: () => Promise<Daemon>;
  /** Hands the rest of the run to a new invocation; the default is an asynchronous self-invoke. */
  continueWith?: (event: ContinuationEvent, context: Context) => Promise<void>;
  /** Time left when the run stops and hands over. */
  reserveMs?: number;
  /** Continuations one run may chain, a guard against a run that never ends. */
  maxHops?: number;
}

async function invokeSelf(event: ContinuationEvent, context: Context): Promise<void> {
  // Loaded on first need: most runs finish in one invocation and never touch the Lambda API.
  const [{ InvokeCommand }, { sharedLambdaClient }] = await Promise.all([
    import("@aws-sdk/client-lambda"),
    import("../src/adapters/aws/clients.js"),
  ]);
  const out = await sharedLambdaClient().send(
    new InvokeCommand({
      FunctionName: context.invokedFunctionArn || context.functionName,
      InvocationType: "Event",
      Payload: new TextEncoder().encode(JSON.stringify(event)),
    }),
  );
  if (out.StatusCode !== 202)
    throw new Error(`continuation of auto-upgrade run ${event.cursor.run_id} was not accepted: HTTP ${out.StatusCode}`);
}

export function createUpgradeCheckHandler(options: UpgradeCheckHandlerOptions = {}) {
  const daemonOf = options.daemon ?? sharedDaemon;
  const continueWith = options.continueWith ?? invokeSelf;
  const reserveMs = options.reserveMs ?? 60_000;
  const maxHops = options.maxHops ?? 100;

  return middy(async (raw: unknown, context: Context): Promise<CycleReport | { status: "disabled" }> => {
    const daemon = await daemonOf();
    if (!daemon.config.autoUpgrade.enabled) return { status: "disabled" };
    const parsed = parseEvent(raw);
    const shouldStop = () => context.getRemainingTimeInMillis() < reserveMs;
    let report: CycleReport;
    let hop = 0;
    switch (parsed.type) {
      case "continuation":
        hop = parsed.event.hop;
        report = await daemon.autoUpgrade.runCycle({ cursor: parsed.event.cursor, shouldStop });
        break;
      case "manual":
        report = await daemon.autoUpgrade.runCycle({
          ...(parsed.event.absolute_slot !== undefined && { forceSlot: parsed.event.absolute_slot }),
          ...(parsed.event.at !== undefined && { at: new Date(parsed.event.at) }),
          shouldStop,
        });
        break;
      case "scheduled":
        report = await daemon.autoUpgrade.runCycle({ at: new Date(parsed.event.time), shouldStop });
        break;
    }
    if (report.cursor) {
      if (hop + 1 > maxHops) {
        logger.error(
          { run_id: report.run_id, hop },
          "auto-upgrade run exceeded its continuations; the rest of its tenants waits for tomorrow",
        );
      } else {
        await continueWith({ kind: "auto-upgrade-continuation", hop: hop + 1, cursor: report.cursor }, context);
      }
    }
    return report;
  }).use(lambdaObservability());
}

export const handler = createUpgradeCheckHandler();
