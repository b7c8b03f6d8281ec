/**
 * EventBridge schedule rules on this machine: a `rate(...)` rule sends its targets EventBridge's
 * "Scheduled Event" through Lambda's asynchronous invoke, every period from when it was created,
 * as a deployed rule does. Cron expressions are not emulated (the daemon's stack uses a rate).
 */
import { randomUUID } from "node:crypto";
import type { ScheduleRule } from "./local-deployment.js";
import { ACCOUNT, REGION } from "./template-values.js";

const UNITS: Record<string, number> = {
  minute: 60_000,
  minutes: 60_000,
  hour: 3_600_000,
  hours: 3_600_000,
  day: 86_400_000,
  days: 86_400_000,
};

/** The period of a `rate(n unit)` expression in milliseconds; undefined for anything else. */
export function ratePeriodMs(expression: string): number | undefined {
  const m = /^rate\((\d+)\s+(minutes?|hours?|days?)\)$/.exec(expression.trim());
  return m ? Number(m[1]) * UNITS[m[2]!]! : undefined;
}

/** The event EventBridge delivers for a scheduled rule firing at `at`. */
export function scheduledEvent(ruleName: string, at: Date): Record<string, unknown> {
  return {
    version: "0",
    id: randomUUID(),
    "detail-type": "Scheduled Event",
    source: "aws.events",
    account: ACCOUNT,
    time: at.toISOString().replace(/\.\d{3}Z$/, "Z"),
    region: REGION,
    resources: [`arn:aws:events:${REGION}:${ACCOUNT}:rule/${ruleName}`],
    detail: {},
  };
}

export interface RunningSchedules {
  /** Rules that could not be emulated, with why. */
  skipped: string[];
  stop(): void;
}

export function startSchedules(
  rules: ScheduleRule[],
  invokeAsync: (functionName: string, event: unknown) => void,
): RunningSchedules {
  const timers: NodeJS.Timeout[] = [];
  const skipped: string[] = [];
  rules.forEach((rule, index) => {
    if (!rule.enabled) return;
    const period = ratePeriodMs(rule.expression);
    if (period === undefined) {
      skipped.push(`${rule.expression}: only rate(...) expressions fire here`);
      return;
    }
    const timer = setInterval(() => {
      for (const name of rule.functionNames) {
        try {
          invokeAsync(name, scheduledEvent(`schedule-${index}`, new Date()));
        } catch {
          // The target is gone; EventBridge records a failed invocation and carries on.
        }
      }
    }, period);
    timer.unref();
    timers.push(timer);
  });
  return { skipped, stop: () => timers.forEach((t) => clearInterval(t)) };
}
