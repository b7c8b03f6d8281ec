/**
 * What an operator watches: one CloudWatch dashboard (API traffic, errors and latency, the
 * handlers' errors, throttles and concurrency, plugin calls and their errors, installs, upgrades,
 * backwards invocations and DynamoDB throttles) and alarms on what needs a human, optionally sent
 * to an e-mail address or an existing SNS topic. The daemon's own metrics are the EMF metrics its
 * handlers write (src/observability/emf-exporter.ts), under the same names the local daemon serves
 * at /metrics.
 *
 * Also the tracing option: X-Ray active tracing for the API stage, the handlers and (through
 * DAEMON_TRACING) the plugin functions the install worker creates.
 *
 * CDK context: `alarmEmail` (an address to subscribe), `alarmTopicArn` (an existing topic),
 * `tracing` (true/false, default false), `metricsNamespace` (default DifyPluginDaemon).
 */
import { Duration, Stack } from "aws-cdk-lib";
import type * as apigateway from "aws-cdk-lib/aws-apigateway";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as actions from "aws-cdk-lib/aws-cloudwatch-actions";
import type * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import * as iam from "aws-cdk-lib/aws-iam";
import * as kms from "aws-cdk-lib/aws-kms";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as sns from "aws-cdk-lib/aws-sns";
import * as subscriptions from "aws-cdk-lib/aws-sns-subscriptions";
import { Construct } from "constructs";
import { addDaemonEnvironment } from "../daemon-environment.js";
import { allowGranteeWildcards } from "../nag.js";

export type HandlerFunctions = Readonly<Record<string, lambda.Function>>;

export interface ObservabilityProps {
  readonly handlers: HandlerFunctions;
  readonly restApi: apigateway.RestApi;
  readonly stageName: string;
  readonly table: dynamodb.ITable;
  /** Plugin functions' role: allowed to send traces when tracing is on. */
  readonly pluginRole: iam.IRole;
  /** @default "DifyPluginDaemon" */
  readonly namespace?: string;
  /** @default "dify-plugin-daemon" */
  readonly serviceName?: string;
  /** An address that gets the alarms (SNS e-mail subscription; confirm the mail AWS sends). */
  readonly alarmEmail?: string;
  /** An existing topic that gets the alarms. */
  readonly alarmTopicArn?: string;
  /** X-Ray active tracing through API Gateway, handlers and plugin functions. */
  readonly tracing?: boolean;
}

/** The settings this construct reads from CDK context (see the module comment). */
export function observabilityContext(
  scope: Construct,
): Pick<ObservabilityProps, "alarmEmail" | "alarmTopicArn" | "tracing" | "namespace"> {
  const text = (key: string): string | undefined => {
    const raw = scope.node.tryGetContext(key) as unknown;
    return raw === undefined || raw === null || raw === "" ? undefined : String(raw);
  };
  const email = text("alarmEmail");
  if (email !== undefined && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email))
    throw new Error(`context alarmEmail: "${email}" is not an e-mail address`);
  const topic = text("alarmTopicArn");
  if (topic !== undefined && !/^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]+$/.test(topic))
    throw new Error(`context alarmTopicArn: "${topic}" is not an SNS topic ARN`);
  const tracing = text("tracing");
  if (tracing !== undefined && tracing !== "true" && tracing !== "false")
    throw new Error(`context tracing must be true or false, got "${tracing}"`);
  return { alarmEmail: email, alarmTopicArn: topic, tracing: tracing === "true", namespace: text("metricsNamespace") };
}

const FIVE_MINUTES = Duration.minutes(5);

export class Observability extends Construct {
  readonly dashboard: cloudwatch.Dashboard;
  readonly alarms: cloudwatch.Alarm[] = [];
  /** Where the alarms go, when a target was given. */
  readonly alarmTopic: sns.ITopic | undefined;

  private readonly namespace: string;
  private readonly service: string;

  constructor(scope: Construct, id: string, props: ObservabilityProps) {
    super(scope, id);
    this.namespace = props.namespace ?? "DifyPluginDaemon";
    this.service = props.serviceName ?? "dify-plugin-daemon";
    addDaemonEnvironment(Object.values(props.handlers), {
      POWERTOOLS_METRICS_NAMESPACE: this.namespace,
      POWERTOOLS_SERVICE_NAME: this.service,
    });
    if (props.tracing) this.enableTracing(props);
    this.alarmTopic = this.topic(props);

    const apiDims = { ApiName: props.restApi.restApiName, Stage: props.stageName };
    const api = (metricName: string, statistic: string) =>
      new cloudwatch.Metric({
        namespace: "AWS/ApiGateway",
        metricName,
        dimensionsMap: apiDims,
        statistic,
        period: FIVE_MINUTES,
      });
    const handlers = Object.entries(props.handlers);
    const perHandler = (metric: (fn: lambda.Function) => cloudwatch.Metric) =>
      handlers.map(([name, fn]) => metric(fn).with({ label: name }));
    const tableMetric = (metricName: string) =>
      new cloudwatch.Metric({
        namespace: "AWS/DynamoDB",
        metricName,
        dimensionsMap: { TableName: props.table.tableName },
        statistic: "Sum",
        period: FIVE_MINUTES,
      });

    this.dashboard = new cloudwatch.Dashboard(this, "Dashboard", {
      dashboardName: `${Stack.of(this).stackName}-operations`,
      defaultInterval: Duration.hours(6),
    });
    const graph = (title: string, left: cloudwatch.IMetric[], extra: Partial<cloudwatch.GraphWidgetProps> = {}) =>
      new cloudwatch.GraphWidget({ title, left, width: 8, height: 6, ...extra });

    this.dashboard.addWidgets(
      new cloudwatch.TextWidget({
        markdown: `# Dify plugin daemon\nAPI \`${props.stageName}\`, handlers, plugin calls (EMF namespace \`${this.namespace}\`). Alarms below need a human; docs/operations.md says what to do for each.`,
        width: 24,
        height: 2,
      }),
    );
    this.dashboard.addWidgets(
      graph("API requests", [api("Count", "Sum").with({ label: "requests" })], {
        right: [api("4XXError", "Sum").with({ label: "4xx" }), api("5XXError", "Sum").with({ label: "5xx" })],
      }),
      graph(
        "API latency (ms)",
        ["p50", "p90", "p99"].map((p) => api("Latency", p).with({ label: `latency ${p}` })),
        {
          right: [api("IntegrationLatency", "p99").with({ label: "integration p99" })],
        },
      ),
      graph("Requests by route group (daemon)", [
        this.search("plugin_http_requests_total", ["route_group", "status_class"], "Sum"),
      ]),
    );
    this.dashboard.addWidgets(
      graph(
        "Handler errors",
        perHandler((fn) => fn.metricErrors({ period: FIVE_MINUTES })),
      ),
      graph(
        "Handler duration p99 (ms)",
        perHandler((fn) => fn.metricDuration({ period: FIVE_MINUTES, statistic: "p99" })),
      ),
      graph("Throttles", [
        ...perHandler((fn) => fn.metricThrottles({ period: FIVE_MINUTES })),
        new cloudwatch.Metric({
          namespace: "AWS/Lambda",
          metricName: "Throttles",
          statistic: "Sum",
          period: FIVE_MINUTES,
          label: "account (plugin functions too)",
        }),
      ]),
    );
    this.dashboard.addWidgets(
      graph("Concurrency", [
        ...perHandler((fn) => fn.metric("ConcurrentExecutions", { period: FIVE_MINUTES, statistic: "Maximum" })),
        new cloudwatch.Metric({
          namespace: "AWS/Lambda",
          metricName: "ConcurrentExecutions",
          statistic: "Maximum",
          period: FIVE_MINUTES,
          label: "account",
        }),
      ]),
      graph("Plugin calls and errors", [this.daemon("plugin_invocations_total", "Sum", {}, "calls")], {
        right: [this.daemon("plugin_invocation_errors_total", "Sum", {}, "errors")],
      }),
      graph("Plugin errors by plugin", [this.search("plugin_invocation_errors_total", ["plugin_id"], "Sum")]),
    );
    this.dashboard.addWidgets(
      graph("Plugin call latency (s)", [
        ...["p50", "p90", "p99"].map((p) => this.daemon("plugin_invocation_duration_seconds", p, {}, `call ${p}`)),
        ...["p50", "p99"].map((p) => this.daemon("plugin_invocation_first_chunk_seconds", p, {}, `first chunk ${p}`)),
      ]),
      graph("Installs and upgrades", [
        this.daemon("plugin_installations_total", "Sum", { status: "success" }, "installs ok"),
        this.daemon("plugin_installations_total", "Sum", { status: "failed" }, "installs failed"),
        this.daemon("plugin_upgrades_total", "Sum", { status: "success" }, "upgrades ok"),
        this.daemon("plugin_upgrades_total", "Sum", { status: "failed" }, "upgrades failed"),
      ]),
      graph("Auto-upgrade", [
        ...["ok", "skipped", "failed"].map((s) =>
          this.daemon("plugin_auto_upgrade_checks_total", "Sum", { status: s }, `checks ${s}`),
        ),
        ...["upgrade", "start_failed", "skip"].map((d) =>
          this.daemon("plugin_auto_upgrade_decisions_total", "Sum", { decision: d }, `decided ${d}`),
        ),
      ]),
    );
    this.dashboard.addWidgets(
      graph("Backwards invocations", [this.search("plugin_backwards_invocations_total", ["type", "status"], "Sum")]),
      graph("DynamoDB throttles and errors", [
        tableMetric("ReadThrottleEvents"),
        tableMetric("WriteThrottleEvents"),
        tableMetric("SystemErrors"),
      ]),
      graph("Cold starts", [this.search("ColdStart", ["function_name"], "Sum")]),
    );

    // Alarms: each one is something to look at now, not a trend.
    const apiErrors = new cloudwatch.MathExpression({
      expression: "IF(requests >= 20, 100 * errors / requests, 0)",
      usingMetrics: { requests: api("Count", "Sum"), errors: api("5XXError", "Sum") },
      period: FIVE_MINUTES,
      label: "5xx % of requests",
    });
    this.alarm(
      "Api5xxRate",
      apiErrors,
      5,
      2,
      "More than 5% of API requests answered 5xx for 10 minutes (at least 20 requests).",
    );
    for (const [name, fn] of handlers) {
      const cid = name
        .split("-")
        .map((p) => p.charAt(0).toUpperCase() + p.slice(1))
        .join("");
      this.alarm(
        `${cid}Errors`,
        fn.metricErrors({ period: FIVE_MINUTES }),
        5,
        1,
        `The ${name} handler failed 5 or more times in 5 minutes.`,
      );
      this.alarm(
        `${cid}Throttles`,
        fn.metricThrottles({ period: FIVE_MINUTES }),
        1,
        1,
        `The ${name} handler was throttled: its reserved concurrency is used up.`,
      );
    }
    const pluginErrors = new cloudwatch.MathExpression({
      expression: "IF(calls >= 10, 100 * errors / calls, 0)",
      usingMetrics: {
        calls: this.daemon("plugin_invocations_total", "Sum", {}),
        errors: this.daemon("plugin_invocation_errors_total", "Sum", {}),
      },
      period: Duration.minutes(15),
      label: "plugin error %",
    });
    this.alarm(
      "PluginErrorRate",
      pluginErrors,
      25,
      1,
      "A quarter or more of plugin calls failed in 15 minutes (at least 10 calls); the dashboard's errors by plugin names the plugin.",
    );
    this.alarm(
      "InstallFailures",
      this.daemon("plugin_installations_total", "Sum", { status: "failed" }).with({ period: Duration.hours(1) }),
      3,
      1,
      "Three or more plugin installs failed within an hour.",
    );
    this.alarm(
      "UpgradeFailures",
      this.daemon("plugin_upgrades_total", "Sum", { status: "failed" }).with({ period: Duration.hours(1) }),
      3,
      1,
      "Three or more plugin upgrades failed within an hour.",
    );
    const throttled = new cloudwatch.MathExpression({
      expression: "reads + writes",
      usingMetrics: { reads: tableMetric("ReadThrottleEvents"), writes: tableMetric("WriteThrottleEvents") },
      period: FIVE_MINUTES,
      label: "DynamoDB throttle events",
    });
    this.alarm("TableThrottles", throttled, 1, 2, "The metadata table throttled requests for 10 minutes.");
  }

  /** One of the daemon's EMF metrics, without the plugin dimension (totals). */
  private daemon(
    metricName: string,
    statistic: string,
    dims: Record<string, string>,
    label?: string,
  ): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: this.namespace,
      metricName,
      dimensionsMap: { service: this.service, ...dims },
      statistic,
      period: FIVE_MINUTES,
      ...(label !== undefined && { label }),
    });
  }

  /** Every series of a daemon metric by the given dimensions (plugins are installed at run time, so they are searched). */
  private search(metricName: string, dims: string[], statistic: string): cloudwatch.MathExpression {
    const schema = [this.namespace, "service", ...dims].join(",");
    return new cloudwatch.MathExpression({
      expression: `SEARCH('{${schema}} MetricName="${metricName}"', '${statistic}', 300)`,
      usingMetrics: {},
      period: FIVE_MINUTES,
      label: "",
    });
  }

  private alarm(
    id: string,
    metric: cloudwatch.IMetric,
    threshold: number,
    evaluationPeriods: number,
    description: string,
  ): void {
    const alarm = new cloudwatch.Alarm(this, id, {
      metric,
      threshold,
      evaluationPeriods,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription: description,
    });
    if (this.alarmTopic) {
      alarm.addAlarmAction(new actions.SnsAction(this.alarmTopic));
      alarm.addOkAction(new actions.SnsAction(this.alarmTopic));
    }
    this.alarms.push(alarm);
  }

  private topic(props: ObservabilityProps): sns.ITopic | undefined {
    if (props.alarmTopicArn) return sns.Topic.fromTopicArn(this, "AlarmTopic", props.alarmTopicArn);
    if (!props.alarmEmail) return undefined;
    // Encrypted with a key of its own: CloudWatch may not use the AWS-managed SNS key.
    const key = new kms.Key(this, "AlarmTopicKey", {
      enableKeyRotation: true,
      description: "Dify plugin daemon alarm notifications",
    });
    key.grant(new iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*");
    const topic = new sns.Topic(this, "AlarmTopic", {
      displayName: "Dify plugin daemon alarms",
      masterKey: key,
      enforceSSL: true,
    });
    topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    return topic;
  }

  private enableTracing(props: ObservabilityProps): void {
    const stage = props.restApi.deploymentStage.node.defaultChild as apigateway.CfnStage;
    stage.tracingEnabled = true;
    const xray = new iam.PolicyStatement({
      actions: ["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
      resources: ["*"],
    });
    const reason = {
      finding: /^Resource::\*$/,
      reason:
        "X-Ray's PutTraceSegments and PutTelemetryRecords have no resource-level permissions: * is the only resource.",
    };
    for (const fn of Object.values(props.handlers)) {
      (fn.node.defaultChild as lambda.CfnFunction).tracingConfig = { mode: "Active" };
      addDaemonEnvironment([fn], { DAEMON_TRACING: "true" });
      fn.addToRolePolicy(xray);
      allowGranteeWildcards(fn, reason);
    }
    props.pluginRole.addToPrincipalPolicy(xray);
    allowGranteeWildcards(props.pluginRole, reason);
  }
}
