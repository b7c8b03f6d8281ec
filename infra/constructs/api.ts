/**
 * The daemon's HTTP API: a Regional REST API (v1) with one Lambda proxy integration per route
 * group. REST rather than HTTP API because only REST APIs stream responses (dispatch answers are
 * long-lived streams) and only REST APIs are in LocalStack's free plan.
 *
 * - Streaming groups (dispatch, public endpoints, backwards invocation) use response transfer mode
 *   STREAM, which invokes the function with InvokeWithResponseStream and allows integration
 *   timeouts up to 15 minutes without a quota increase.
 * - Everything else is buffered (29 s integration timeout, 10 MB payload).
 * - Request bodies reach Lambda as text unless their Content-Type is a binary media type (then
 *   base64, 4/3 larger, inside Lambda's 6 MB event). So JSON dispatch bodies keep almost all of the
 *   6 MB, and only uploads and binary webhook bodies pay for base64. Binary answers (assets) go
 *   through the streaming dispatch function: streamed responses are passed through as bytes
 *   whatever the binary media types.
 * - No API Gateway API keys or authorizers: Dify sends the daemon key as `X-Api-Key` and the
 *   handlers check it (API keys would claim that header); `/e/*` is public by design and
 *   backwards invocation is authenticated by its session id, as upstream.
 * - Unknown routes reach the management handler through a catch-all, which answers with
 *   upstream's 404 body; the gateway's own "missing authentication token" answer (for paths that
 *   stop at an intermediate resource) is rewritten to the same 404.
 */
import { Aws, Duration, RemovalPolicy, Stack } from "aws-cdk-lib";
import * as apigateway from "aws-cdk-lib/aws-apigateway";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import { API_PATHS, ROUTE_GROUP_NAMES, ROUTE_GROUPS, type RouteGroup } from "../../src/domain/route-groups.js";
import { acknowledge } from "../nag.js";

/** The function serving each route group (src/domain/route-groups.ts says which paths and whether it streams). */
export type ApiRouteTargets = Readonly<Record<RouteGroup, lambda.IFunction>>;

export interface ApiProps {
  readonly targets: ApiRouteTargets;
  /** @default "prod" */
  readonly stageName?: string;
  /** Integration timeout of the streaming routes (≤ 15 minutes). */
  readonly streamTimeout: Duration;
  /** @default 100 */
  readonly throttlingRateLimit?: number;
  /** @default 200 */
  readonly throttlingBurstLimit?: number;
  /** @default RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * Content types whose request bodies API Gateway base64-encodes for Lambda: what is not text.
 * Anything else (JSON above all) reaches the handler as a UTF-8 string. "API Gateway uses the
 * first Accept header from clients to determine if a response should return binary media" and
 * streaming integrations need no binary media types at all
 * (https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-payload-encodings.html),
 * which is why binary answers are served by a streaming route instead of a `*` + `/*` entry here.
 */
export const BINARY_MEDIA_TYPES = [
  "multipart/form-data",
  "application/octet-stream",
  "application/zip",
  "application/x-zip-compressed",
  "application/gzip",
  "application/pdf",
  "image/*",
  "audio/*",
  "video/*",
] as const;

/** Upstream's answer for unknown routes (a string `code`, unlike the envelope). */
export const NOT_FOUND_BODY = '{"code":"not_found","message":"route not found"}';

const MAX_STREAM_TIMEOUT = Duration.minutes(15);

/**
 * A daemon error envelope for answers API Gateway gives itself. Dify reads a dispatch stream's
 * lines without checking the status, so an envelope (code -500 with the JSON-encoded message)
 * becomes a typed error there instead of an unparsable line.
 */
export function gatewayErrorBody(code: number, errorType: string, message: string): string {
  return JSON.stringify({ code, message: JSON.stringify({ message, error_type: errorType, args: null }), data: null });
}

/** API Gateway's own failures that a daemon user can run into, answered in the daemon's shape. */
export const GATEWAY_ERRORS: Array<{ id: string; type: apigateway.ResponseType; status: string; body: string }> = [
  {
    id: "RequestTooLarge",
    type: apigateway.ResponseType.REQUEST_TOO_LARGE,
    status: "413",
    body: gatewayErrorBody(-400, "PluginDaemonBadRequestError", "request body exceeds API Gateway's 10 MB limit"),
  },
  {
    id: "IntegrationTimeout",
    type: apigateway.ResponseType.INTEGRATION_TIMEOUT,
    status: "504",
    body: gatewayErrorBody(
      -500,
      "PluginDaemonInternalServerError",
      "the daemon did not answer within API Gateway's integration timeout",
    ),
  },
  {
    id: "Throttled",
    type: apigateway.ResponseType.THROTTLED,
    status: "429",
    body: gatewayErrorBody(
      -500,
      "PluginDaemonInternalServerError",
      "too many requests: the API's throttling limit was reached",
    ),
  },
  {
    // Most often a request Lambda refuses: an event over its 6 MB limit (uploads above ~4.4 MB,
    // JSON bodies above ~6 MB).
    id: "Default5xx",
    type: apigateway.ResponseType.DEFAULT_5XX,
    status: "502",
    body: gatewayErrorBody(
      -500,
      "PluginDaemonInternalServerError",
      "API Gateway could not run the daemon handler (the request may exceed Lambda's 6 MB limit: uploads above about 4.4 MB, JSON bodies above about 6 MB)",
    ),
  },
];

/** One JSON line per request, with what tells a slow plugin from a failing handler. */
function accessLogFormat(): apigateway.AccessLogFormat {
  const f = apigateway.AccessLogField;
  return apigateway.AccessLogFormat.custom(
    JSON.stringify({
      requestId: f.contextRequestId(),
      extendedRequestId: f.contextExtendedRequestId(),
      ip: f.contextIdentitySourceIp(),
      requestTime: f.contextRequestTime(),
      httpMethod: f.contextHttpMethod(),
      resourcePath: f.contextResourcePath(),
      path: f.contextPath(),
      status: f.contextStatus(),
      responseLength: f.contextResponseLength(),
      responseLatency: f.contextResponseLatency(),
      integrationLatency: f.contextIntegrationLatency(),
      integrationStatus: f.contextIntegrationStatus(),
      // Gateway error messages may contain quotes, which would break the JSON line; they are in
      // the stage's execution log (ERROR level) instead.
      lambdaRequestId: f.contextAwsEndpointRequestId(),
    }),
  );
}

export class Api extends Construct {
  readonly restApi: apigateway.RestApi;
  readonly stageName: string;
  readonly accessLogs: logs.LogGroup;

  constructor(scope: Construct, id: string, props: ApiProps) {
    super(scope, id);
    if (props.streamTimeout.toSeconds() > MAX_STREAM_TIMEOUT.toSeconds()) {
      throw new Error(`Api: streamTimeout must be ≤ 15 minutes, got ${props.streamTimeout.toHumanString()}`);
    }
    this.stageName = props.stageName ?? "prod";
    this.accessLogs = new logs.LogGroup(this, "AccessLogs", {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    this.restApi = new apigateway.RestApi(this, "RestApi", {
      description: "Dify plugin daemon",
      endpointTypes: [apigateway.EndpointType.REGIONAL],
      // The handlers decode `isBase64Encoded` themselves, so either form works; see BINARY_MEDIA_TYPES.
      binaryMediaTypes: [...BINARY_MEDIA_TYPES],
      // API Gateway needs an account-level role to write logs; retained because it is shared by
      // every REST API in the account and region.
      cloudWatchRole: true,
      cloudWatchRoleRemovalPolicy: RemovalPolicy.RETAIN,
      deployOptions: {
        stageName: this.stageName,
        accessLogDestination: new apigateway.LogGroupLogDestination(this.accessLogs),
        accessLogFormat: accessLogFormat(),
        // Execution logs for errors only; request/response bodies carry credentials, never log them.
        loggingLevel: apigateway.MethodLoggingLevel.ERROR,
        dataTraceEnabled: false,
        metricsEnabled: true,
        throttlingRateLimit: props.throttlingRateLimit ?? 100,
        throttlingBurstLimit: props.throttlingBurstLimit ?? 200,
        tracingEnabled: false,
      },
    });
    this.restApi.addGatewayResponse("MissingRoute", {
      type: apigateway.ResponseType.MISSING_AUTHENTICATION_TOKEN,
      statusCode: "404",
      responseHeaders: { "Content-Type": "'application/json'" },
      templates: { "application/json": NOT_FOUND_BODY },
    });
    for (const error of GATEWAY_ERRORS) {
      this.restApi.addGatewayResponse(error.id, {
        type: error.type,
        statusCode: error.status,
        responseHeaders: { "Content-Type": "'application/json'" },
        templates: { "application/json": error.body },
      });
    }

    // The stage URL is exported as PluginDaemonUrl (without the trailing slash this one has).
    this.restApi.node.tryRemoveChild("Endpoint");

    this.addRoutes(props.targets, props.streamTimeout);
    this.suppressFindings();
  }

  private addRoutes(targets: ApiRouteTargets, streamTimeout: Duration): void {
    // One permission per function for the whole API keeps each function's resource policy small.
    const buffered = (fn: lambda.IFunction) => new apigateway.LambdaIntegration(fn, { scopePermissionToMethod: false });
    const streaming = (fn: lambda.IFunction) =>
      new apigateway.LambdaIntegration(fn, {
        scopePermissionToMethod: false,
        responseTransferMode: apigateway.ResponseTransferMode.STREAM,
        timeout: streamTimeout,
      });
    // One integration per group, shared by all of its paths.
    const integrations = Object.fromEntries(
      ROUTE_GROUP_NAMES.map((g) => [g, ROUTE_GROUPS[g].streams ? streaming(targets[g]) : buffered(targets[g])]),
    ) as Record<RouteGroup, apigateway.LambdaIntegration>;
    for (const { path, method, group } of API_PATHS) {
      this.restApi.root.resourceForPath(path).addMethod(method, integrations[group]);
    }
  }

  private suppressFindings(): void {
    acknowledge(
      this.restApi,
      {
        id: "AwsSolutions-APIG2",
        reason:
          "Lambda proxy integrations: each handler validates its requests exactly as the upstream daemon does, including its error bodies.",
      },
      {
        id: "AwsSolutions-APIG3",
        reason:
          "WAF is optional and priced per ACL and request; associate a web ACL with the stage if the public /e/* endpoints need it (docs/deploy.md).",
      },
      {
        id: "AwsSolutions-APIG4",
        reason:
          "Dify authenticates with the daemon key in X-Api-Key, checked by the handlers (as upstream); /e/* endpoints are public by " +
          "design and /backwards-invocation is authenticated by its session id. An authorizer would claim X-Api-Key or break these contracts.",
      },
      {
        id: "AwsSolutions-COG4",
        reason: "Callers are Dify's API server and plugin functions, not Cognito users; see AwsSolutions-APIG4.",
      },
    );
    const role = this.restApi.node.tryFindChild("CloudWatchRole");
    if (role) {
      acknowledge(role, {
        id: "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
        reason:
          "AmazonAPIGatewayPushToCloudWatchLogs is the policy AWS documents for API Gateway's account-level logging role.",
      });
    }
  }

  /**
   * The stage URL without a trailing slash, built from the API id rather than the stage so
   * functions behind this API can carry it without a dependency cycle.
   */
  get url(): string {
    return this.urlFromTemplate("https://{restApiId}.execute-api.{region}.{urlSuffix}/{stage}");
  }

  /** Fills `{restApiId}`, `{region}`, `{urlSuffix}` and `{stage}` into a URL template. */
  urlFromTemplate(template: string): string {
    const stack = Stack.of(this);
    return template
      .replaceAll("{restApiId}", this.restApi.restApiId)
      .replaceAll("{region}", stack.region)
      .replaceAll("{urlSuffix}", Aws.URL_SUFFIX)
      .replaceAll("{stage}", this.stageName);
  }
}
