/**
 * Runs the auto-upgrade check on a fixed rate. An EventBridge *rule* rather than EventBridge
 * Scheduler: LocalStack's Scheduler accepts schedules but never fires them, rules do.
 */
import { Duration } from "aws-cdk-lib";
import * as events from "aws-cdk-lib/aws-events";
import * as targets from "aws-cdk-lib/aws-events-targets";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import { Construct } from "constructs";

export interface UpgradeScheduleProps {
  readonly upgradeCheck: lambda.IFunction;
  /** @default 15 minutes (Dify's own auto-upgrade task runs every 15 minutes) */
  readonly rate?: Duration;
  /** @default true */
  readonly enabled?: boolean;
}

export class UpgradeSchedule extends Construct {
  readonly rule: events.Rule;

  constructor(scope: Construct, id: string, props: UpgradeScheduleProps) {
    super(scope, id);
    this.rule = new events.Rule(this, "Rule", {
      description: "Checks installed plugins for marketplace upgrades",
      schedule: events.Schedule.rate(props.rate ?? Duration.minutes(15)),
      enabled: props.enabled ?? true,
    });
    this.rule.addTarget(
      new targets.LambdaFunction(props.upgradeCheck, {
        // A missed run is simply picked up by the next one; retrying would overlap with it.
        retryAttempts: 0,
        maxEventAge: Duration.minutes(15),
      }),
    );
  }
}
