/**
 * The REST API a stack's template defines (AWS::ApiGateway::RestApi and its Resources, Methods,
 * GatewayResponses and Stage), as the local API Gateway (api-gateway.ts) serves it: which
 * function each resource and method invokes, buffered or streamed, with which integration
 * timeout; the binary media types; the gateway's own answers; the stage's throttling.
 */
import type { TemplateResource } from "./stack-template.js";

export interface Integration {
  functionName: string;
  /** Response transfer mode STREAM: InvokeWithResponseStream, passed through as it arrives. */
  streaming: boolean;
  timeoutMs: number;
}

export interface GatewayResponse {
  status: number;
  body: string;
  headers: Record<string, string>;
}

export interface RestApiModel {
  stage: string;
  binaryMediaTypes: string[];
  /** Resource path → HTTP method (or ANY) → integration. A resource without methods maps to an empty map. */
  resources: Map<string, Map<string, Integration>>;
  /** Customised gateway responses by ResponseType (e.g. MISSING_AUTHENTICATION_TOKEN). */
  gatewayResponses: Map<string, GatewayResponse>;
  throttling: { rateLimit: number; burstLimit: number };
}

/** Buffered Lambda proxy integrations time out after 29 s unless the method says otherwise. */
const DEFAULT_TIMEOUT_MS = 29_000;

type Resolve = (value: unknown) => unknown;

/** Reads the API from resolved template resources; `resolve` resolves intrinsics. */
export function restApiModel(resources: Record<string, TemplateResource>, resolve: Resolve): RestApiModel {
  const of = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);
  const apis = of("AWS::ApiGateway::RestApi");
  if (apis.length !== 1)
    throw new Error(`the stack defines ${apis.length} REST APIs; this emulator serves exactly one`);
  const [apiId, api] = apis[0]!;
  const rootRef = JSON.stringify({ "Fn::GetAtt": [apiId, "RootResourceId"] });

  // Resource paths from the parent chain; the root is "/".
  const paths = new Map<string, string>();
  const pathOf = (ref: unknown): string => {
    if (JSON.stringify(ref) === rootRef) return "/";
    const id = (ref as { Ref?: string }).Ref;
    if (!id) throw new Error(`unexpected ApiGateway resource reference ${JSON.stringify(ref)}`);
    const known = paths.get(id);
    if (known) return known;
    const props = resources[id]?.Properties ?? {};
    const parent = pathOf(props.ParentId);
    const path = `${parent === "/" ? "" : parent}/${String(props.PathPart)}`;
    paths.set(id, path);
    return path;
  };
  const model: RestApiModel = {
    stage: "prod",
    binaryMediaTypes: (api.Properties?.BinaryMediaTypes as string[] | undefined) ?? [],
    resources: new Map([["/", new Map()]]),
    gatewayResponses: new Map(),
    throttling: { rateLimit: 10_000, burstLimit: 5_000 },
  };
  for (const [id] of of("AWS::ApiGateway::Resource")) model.resources.set(pathOf({ Ref: id }), new Map());
  for (const [, method] of of("AWS::ApiGateway::Method")) {
    const props = method.Properties ?? {};
    const integration = props.Integration as
      | { Type?: string; Uri?: unknown; ResponseTransferMode?: string; TimeoutInMillis?: number }
      | undefined;
    if (integration?.Type !== "AWS_PROXY")
      throw new Error(`only Lambda proxy integrations are emulated, got ${integration?.Type}`);
    const uri = String(resolve(integration.Uri));
    const target =
      /\/functions\/arn:[^:]+:lambda:[^:]+:\d+:function:([^/:]+)[^/]*\/(invocations|response-streaming-invocations)$/.exec(
        uri,
      );
    if (!target) throw new Error(`cannot read the function of integration URI ${uri}`);
    const path = pathOf(props.ResourceId);
    model.resources.get(path)?.set(String(props.HttpMethod).toUpperCase(), {
      functionName: target[1]!,
      streaming: integration.ResponseTransferMode === "STREAM" || target[2] === "response-streaming-invocations",
      timeoutMs: integration.TimeoutInMillis ?? DEFAULT_TIMEOUT_MS,
    });
  }
  for (const [, response] of of("AWS::ApiGateway::GatewayResponse")) {
    const props = response.Properties ?? {};
    const templates = (props.ResponseTemplates as Record<string, string> | undefined) ?? {};
    const headers: Record<string, string> = {};
    for (const [key, value] of Object.entries((props.ResponseParameters as Record<string, string> | undefined) ?? {})) {
      const name = /^gatewayresponse\.header\.(.+)$/.exec(key)?.[1];
      if (name) headers[name] = value.replace(/^'|'$/g, "");
    }
    model.gatewayResponses.set(String(props.ResponseType), {
      status: Number(props.StatusCode ?? 500),
      body: templates["application/json"] ?? Object.values(templates)[0] ?? "",
      headers,
    });
  }
  const stage = of("AWS::ApiGateway::Stage")[0]?.[1].Properties;
  if (stage) {
    model.stage = String(stage.StageName ?? model.stage);
    const settings = (
      stage.MethodSettings as Array<{ ThrottlingRateLimit?: number; ThrottlingBurstLimit?: number }> | undefined
    )?.[0];
    if (settings?.ThrottlingRateLimit !== undefined) model.throttling.rateLimit = settings.ThrottlingRateLimit;
    if (settings?.ThrottlingBurstLimit !== undefined) model.throttling.burstLimit = settings.ThrottlingBurstLimit;
  }
  return model;
}
