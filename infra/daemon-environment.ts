/**
 * Lambda environments written by name from the daemon's configuration schema (src/config.ts):
 * a name the configuration does not read fails type checking here, not in a deployed function.
 */
import type * as lambda from "aws-cdk-lib/aws-lambda";
import type { DaemonEnvironment } from "../src/config.js";

export type { DaemonEnvironment } from "../src/config.js";

/** The variables that have a value, as a Lambda function's `environment`. */
export function daemonEnvironment(vars: DaemonEnvironment): Record<string, string> {
  return Object.fromEntries(Object.entries(vars).filter((entry): entry is [string, string] => entry[1] !== undefined));
}

/** Adds the variables that have a value to each function. */
export function addDaemonEnvironment(fns: readonly lambda.Function[], vars: DaemonEnvironment): void {
  for (const [key, value] of Object.entries(daemonEnvironment(vars))) {
    for (const fn of fns) fn.addEnvironment(key, value);
  }
}
