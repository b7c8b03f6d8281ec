/**
 * The operations dashboard and alarms in the synthesized stack, the alarm target and tracing
 * options from CDK context, and cdk-nag staying clean with each of them.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { App, type Stack } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { beforeAll, describe, expect, it } from "vitest";
import { HANDLER_NAMES } from "../../infra/constructs/handlers.js";
import { observabilityContext } from "../../infra/constructs/observability.js";
import { bundleDir, bundleHandlers, logicalId, type SynthesizedDaemon, synthDaemon } from "./synth.js";

type Json = Record<string, any>;

let plain: SynthesizedDaemon;
let withEmail: SynthesizedDaemon;
let traced: SynthesizedDaemon;

beforeAll(() => {
  if (!HANDLER_NAMES.every((n) => existsSync(join(bundleDir, n, "index.mjs")))) bundleHandlers();
  plain = synthDaemon();
  withEmail = synthDaemon({ alarmEmail: "ops@example.com" });
  traced = synthDaemon({ tracing: "true", alarmTopicArn: "arn:aws:sns:us-east-1:123456789012:ops-alarms" });
}, 180_000);

const resourcesOf = (d: SynthesizedDaemon, type: string): Json[] =>
  Object.values(d.template.toJSON().Resources as Record<string, Json>).filter((r) => r.Type === type);
const nagViolations = (d: SynthesizedDaemon) =>
  new AwsSolutionsChecks(d.app)
    .validateScope(d.stack as Stack)
    .violations.map((v) => `${v.ruleName} at ${v.violatingResources.map((r) => r.constructPath).join(", ")}`);

/** The dashboard body with its CloudFormation tokens flattened to text. */
function dashboardBody(d: SynthesizedDaemon): { widgets: Array<{ type: string; properties: Json }> } {
  const [dashboard] = resourcesOf(d, "AWS::CloudWatch::Dashboard");
  const parts = dashboard!.Properties.DashboardBody["Fn::Join"][1] as unknown[];
  return JSON.parse(parts.map((p) => (typeof p === "string" ? p : "TOKEN")).join(""));
}

describe("operations dashboard", () => {
  it("shows requests, errors, latency, plugin errors, throttles, concurrency, installs, upgrades and DynamoDB throttles", () => {
    const titles = dashboardBody(plain)
      .widgets.filter((w) => w.type === "metric")
      .map((w) => w.properties.title);
    expect(titles).toEqual([
      "API requests",
      "API latency (ms)",
      "Requests by route group (daemon)",
      "Handler errors",
      "Handler duration p99 (ms)",
      "Throttles",
      "Concurrency",
      "Plugin calls and errors",
      "Plugin errors by plugin",
      "Plugin call latency (s)",
      "Installs and upgrades",
      "Auto-upgrade",
      "Backwards invocations",
      "DynamoDB throttles and errors",
      "Cold starts",
    ]);
    const text = JSON.stringify(dashboardBody(plain));
    for (const metric of [
      "plugin_invocation_errors_total",
      "plugin_invocation_duration_seconds",
      "plugin_installations_total",
      "plugin_upgrades_total",
      "WriteThrottleEvents",
      "ConcurrentExecutions",
    ]) {
      expect(text).toContain(metric);
    }
    expect(text).toContain(
      "SEARCH('{DifyPluginDaemon,service,plugin_id} MetricName=\\\"plugin_invocation_errors_total\\\"'",
    );
  });

  it("has the handlers write their EMF metrics to the dashboard's namespace", () => {
    for (const name of HANDLER_NAMES) {
      const id = logicalId(plain.stack, plain.stack.handlers.functions[name]);
      expect(plain.template.toJSON().Resources[id].Properties.Environment.Variables).toMatchObject({
        POWERTOOLS_METRICS_NAMESPACE: "DifyPluginDaemon",
        POWERTOOLS_SERVICE_NAME: "dify-plugin-daemon",
      });
    }
  });
});

describe("alarms", () => {
  it("watch what needs a human, without a target unless one is configured", () => {
    const alarms = resourcesOf(plain, "AWS::CloudWatch::Alarm");
    const descriptions = alarms.map((a) => a.Properties.AlarmDescription as string);
    expect(descriptions.some((d) => d.includes("5xx"))).toBe(true);
    expect(descriptions.some((d) => d.includes("plugin calls failed"))).toBe(true);
    expect(descriptions.some((d) => d.includes("plugin installs failed"))).toBe(true);
    expect(descriptions.some((d) => d.includes("upgrades failed"))).toBe(true);
    expect(descriptions.some((d) => d.includes("metadata table throttled"))).toBe(true);
    for (const name of HANDLER_NAMES)
      expect(descriptions.filter((d) => d.includes(`The ${name} handler`))).toHaveLength(2);
    expect(alarms).toHaveLength(5 + 2 * HANDLER_NAMES.length);
    expect(alarms.every((a) => a.Properties.TreatMissingData === "notBreaching")).toBe(true);
    expect(alarms.every((a) => a.Properties.AlarmActions === undefined)).toBe(true);
    expect(resourcesOf(plain, "AWS::SNS::Topic")).toHaveLength(0);
  });

  it("go to an encrypted topic with an e-mail subscription when alarmEmail is given", () => {
    const [topic] = resourcesOf(withEmail, "AWS::SNS::Topic");
    expect(topic!.Properties.KmsMasterKeyId).toBeDefined();
    expect(resourcesOf(withEmail, "AWS::SNS::Subscription")).toEqual([
      expect.objectContaining({
        Properties: expect.objectContaining({ Protocol: "email", Endpoint: "ops@example.com" }),
      }),
    ]);
    expect(resourcesOf(withEmail, "AWS::CloudWatch::Alarm").every((a) => a.Properties.AlarmActions?.length === 1)).toBe(
      true,
    );
  });

  it("go to an existing topic when alarmTopicArn is given", () => {
    expect(resourcesOf(traced, "AWS::SNS::Topic")).toHaveLength(0);
    for (const alarm of resourcesOf(traced, "AWS::CloudWatch::Alarm")) {
      expect(alarm.Properties.AlarmActions).toEqual(["arn:aws:sns:us-east-1:123456789012:ops-alarms"]);
    }
  });

  it("refuse a context value that is not an address, an ARN or a boolean", () => {
    const read = (context: Record<string, string>) => () => observabilityContext(new App({ context }));
    expect(read({ alarmEmail: "ops" })).toThrow(/alarmEmail/);
    expect(read({ alarmTopicArn: "ops" })).toThrow(/alarmTopicArn/);
    expect(read({ tracing: "yes" })).toThrow(/tracing/);
    expect(read({ alarmEmail: "ops@example.com", tracing: "true" })()).toMatchObject({
      alarmEmail: "ops@example.com",
      tracing: true,
    });
  });
});

describe("tracing (context tracing=true)", () => {
  it("is active on the API stage and every handler, and reaches the plugin functions through DAEMON_TRACING", () => {
    const [stage] = resourcesOf(traced, "AWS::ApiGateway::Stage");
    expect(stage!.Properties.TracingEnabled).toBe(true);
    for (const name of HANDLER_NAMES) {
      const fn = traced.template.toJSON().Resources[logicalId(traced.stack, traced.stack.handlers.functions[name])];
      expect(fn.Properties.TracingConfig).toEqual({ Mode: "Active" });
      expect(fn.Properties.Environment.Variables.DAEMON_TRACING).toBe("true");
    }
    const pluginRole = logicalId(traced.stack, traced.stack.pluginRuntime.pluginRole);
    const policies = resourcesOf(traced, "AWS::IAM::Policy").filter((p) =>
      JSON.stringify(p.Properties.Roles).includes(pluginRole),
    );
    expect(JSON.stringify(policies)).toContain("xray:PutTraceSegments");
  });

  it("is off by default", () => {
    const [stage] = resourcesOf(plain, "AWS::ApiGateway::Stage");
    expect(stage!.Properties.TracingEnabled).toBe(false);
    expect(resourcesOf(plain, "AWS::Lambda::Function").some((f) => f.Properties.TracingConfig)).toBe(false);
  });
});

describe("cdk-nag", () => {
  it("stays clean with the dashboard, an alarm topic and tracing", () => {
    expect(nagViolations(plain)).toEqual([]);
    expect(nagViolations(withEmail)).toEqual([]);
    expect(nagViolations(traced)).toEqual([]);
  });
});
