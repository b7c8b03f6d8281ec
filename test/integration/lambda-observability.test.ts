/**
 * The Lambda handlers as the Lambda runtime runs them (this file's process plays a Lambda
 * execution environment: AWS_LAMBDA_FUNCTION_NAME is set before the handlers load): EMF metric
 * lines under the same names as /metrics, Powertools' ColdStart once per environment, and
 * Powertools Logger lines carrying the invocation's request id and function context.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lambdaContext, restApiEvent } from "../support/apigateway-events.js";

const KEY = "lambda-daemon-key-5b2c91";
const T = "0b5e7a1c-3f00-4d00-8e00-0000000000b2";
const dataDir = mkdtempSync(join(tmpdir(), "lambda-observability-"));
const stdout: string[] = [];
const write = process.stdout.write.bind(process.stdout);

type Buffered = (event: APIGatewayProxyEvent, context: Context) => Promise<APIGatewayProxyResult>;
let management: Buffered;
let upgradeCheck: (event: unknown, context: Context) => Promise<unknown>;

beforeAll(async () => {
  Object.assign(process.env, {
    AWS_LAMBDA_FUNCTION_NAME: "dify-plugin-daemon-management",
    AWS_LAMBDA_INITIALIZATION_TYPE: "on-demand",
    STORE_BACKEND: "local",
    DATA_DIR: dataDir,
    SERVER_KEY: KEY,
    LOG_LEVEL: "info",
    POWERTOOLS_METRICS_NAMESPACE: "DifyPluginDaemonTest",
    AUTO_UPGRADE_ENABLED: "true",
  });
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    stdout.push(...String(chunk).split("\n").filter(Boolean));
    return (write as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stdout.write;
  management = (await import("../../functions/management.js")).handler as unknown as Buffered;
  upgradeCheck = (await import("../../functions/upgrade-check.js")).handler as unknown as typeof upgradeCheck;
});
afterAll(() => {
  process.stdout.write = write;
  rmSync(dataDir, { recursive: true, force: true });
});

const json = () => stdout.flatMap((line) => (line.startsWith("{") ? [JSON.parse(line) as Record<string, any>] : []));
const emf = (metric: string) =>
  json().filter((l) => l._aws?.CloudWatchMetrics?.[0]?.Metrics?.some((m: { Name: string }) => m.Name === metric));

describe("Lambda handlers", () => {
  it("write EMF HTTP metrics per route group and status class, and ColdStart once", async () => {
    const list = (key: string) =>
      management(
        restApiEvent({
          method: "GET",
          path: `/plugin/${T}/management/list?page=1&page_size=10`,
          headers: { "X-Api-Key": key },
        }),
        lambdaContext("dify-plugin-daemon-management"),
      );
    expect((await list(KEY)).statusCode).toBe(200);
    expect((await list("wrong")).statusCode).toBe(401);

    // Per request: one line for the route group's totals, one per status class.
    const lines = emf("plugin_http_requests_total");
    expect(lines).toHaveLength(4);
    expect(lines[0]!._aws.CloudWatchMetrics[0].Namespace).toBe("DifyPluginDaemonTest");
    expect(lines.map((l) => l._aws.CloudWatchMetrics[0].Dimensions)).toEqual([
      [["service", "route_group"]],
      [["service", "route_group", "status_class"]],
      [["service", "route_group"]],
      [["service", "route_group", "status_class"]],
    ]);
    expect(lines.map((l) => [l.route_group, l.status_class ?? "", l.plugin_http_requests_total])).toEqual([
      ["management", "", 1],
      ["management", "2xx", 1],
      ["management", "", 1],
      ["management", "4xx", 1],
    ]);
    expect(typeof lines[0]!.plugin_http_request_duration_seconds).toBe("number");
    const coldStarts = emf("ColdStart");
    expect(coldStarts).toHaveLength(1);
    expect(coldStarts[0]).toMatchObject({ function_name: "dify-plugin-daemon-management", ColdStart: 1 });
  });

  it("log through Powertools Logger with the invocation's request id and function context", async () => {
    const context = lambdaContext("dify-plugin-daemon-upgrade-check");
    await upgradeCheck({ kind: "auto-upgrade-run" }, context);
    const line = json().find((l) => l.message === "auto-upgrade run finished");
    expect(line).toMatchObject({
      level: "INFO",
      service: "dify-plugin-daemon",
      request_id: context.awsRequestId,
      function_request_id: context.awsRequestId,
      function_name: "dify-plugin-daemon-upgrade-check",
      cold_start: false,
    });
  });
});
