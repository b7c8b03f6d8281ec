/**
 * One Lambda function per handler bundle (`dist/functions/<name>/index.mjs`, built by
 * scripts/bundle.mjs): Node.js 22 on ARM64, JSON logs into a log group owned by the stack, sized
 * per handler. Permissions are granted by the stack, one grant per thing a handler touches.
 *
 * No X-Ray: the bundles carry no tracing instrumentation, and API Gateway access logs plus the
 * handlers' structured logs (with the request id) already tie a request to its invocation. Turning
 * active tracing on would only add cost and an `xray:*` statement on `Resource: "*"`.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Duration, RemovalPolicy } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import * as lambda from "aws-cdk-lib/aws-lambda";
import * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import { ROUTE_GROUPS, type RouteGroup } from "../../src/domain/route-groups.js";
import { addDaemonEnvironment, type DaemonEnvironment, daemonEnvironment } from "../daemon-environment.js";
import { acknowledge } from "../nag.js";
import { HANDLER_NAMES, type HandlerName } from "../settings.js";

export { HANDLER_NAMES, type HandlerName } from "../settings.js";

export interface HandlersProps {
  /** Directory holding `<name>/index.mjs` for every handler. */
  readonly bundleDir: string;
  /** Environment shared by every handler, by the names the daemon's configuration reads. */
  readonly environment: DaemonEnvironment;
  /** How long a streaming request (dispatch, public endpoint, backwards invocation) may last. */
  readonly streamTimeout: Duration;
  /** @default RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** Concurrent executions reserved per handler; none when undefined. */
  readonly reservedConcurrency?: Readonly<Record<HandlerName, number>>;
}

interface HandlerSizing {
  readonly description: string;
  readonly memorySize: number;
  /** A fixed timeout; a streaming route group (src/domain/route-groups.ts) has the streaming timeout instead. */
  readonly timeout?: Duration;
  /** Retries of asynchronous invocations (ignored for synchronous ones). */
  readonly retryAttempts?: number;
}

const SIZING: Record<HandlerName, HandlerSizing> = {
  // Package decoding, signature checks and zip reading are CPU-bound; memory buys CPU.
  management: {
    description: "Dify plugin daemon: management, endpoints, assets, health (buffered)",
    memorySize: 1024,
    // API Gateway cuts buffered integrations at 29 s; running longer only burns money.
    timeout: Duration.seconds(29),
  },
  dispatch: { description: "Dify plugin daemon: plugin invocation (streaming)", memorySize: 512 },
  "public-endpoint": {
    description: "Dify plugin daemon: public plugin endpoints /e/* (streaming)",
    memorySize: 512,
  },
  "backwards-invocation": {
    description: "Dify plugin daemon: backwards invocation from plugin functions (streaming)",
    memorySize: 512,
  },
  "install-worker": {
    description: "Dify plugin daemon: runs install tasks (async)",
    memorySize: 1024,
    timeout: Duration.minutes(15),
    // A failed install is reported on its task; a silent retry would race the user's own retry.
    retryAttempts: 0,
  },
  "upgrade-check": {
    description: "Dify plugin daemon: periodic marketplace upgrade check",
    memorySize: 512,
    timeout: Duration.minutes(5),
    retryAttempts: 0,
  },
};

const streams = (name: HandlerName): boolean => name in ROUTE_GROUPS && ROUTE_GROUPS[name as RouteGroup].streams;

/** "public-endpoint" → "PublicEndpoint", for construct ids. */
const constructId = (name: string): string =>
  name
    .split("-")
    .map((p) => p.charAt(0).toUpperCase() + p.slice(1))
    .join("");

export class Handlers extends Construct {
  readonly functions: Readonly<Record<HandlerName, lambda.Function>>;

  constructor(scope: Construct, id: string, props: HandlersProps) {
    super(scope, id);
    const functions = {} as Record<HandlerName, lambda.Function>;
    for (const name of HANDLER_NAMES) {
      const bundle = join(props.bundleDir, name);
      if (!existsSync(join(bundle, "index.mjs"))) {
        throw new Error(
          `Handlers: ${join(bundle, "index.mjs")} is missing; run node scripts/bundle.mjs (functions/${name}.ts)`,
        );
      }
      const sizing = SIZING[name];
      const cid = constructId(name);
      const logGroup = new logs.LogGroup(this, `${cid}Logs`, {
        retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
        removalPolicy: RemovalPolicy.DESTROY,
      });
      // An explicit role instead of AWSLambdaBasicExecutionRole: logs go to this one log group only.
      const role = new iam.Role(this, `${cid}Role`, {
        description: `Dify plugin daemon ${name} handler`,
        assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
      });
      logGroup.grantWrite(role);
      const fn = new lambda.Function(this, cid, {
        role,
        description: sizing.description,
        runtime: lambda.Runtime.NODEJS_22_X,
        architecture: lambda.Architecture.ARM_64,
        handler: "index.handler",
        // Source maps stay in dist/ for decoding stack traces; they are not deployed.
        code: lambda.Code.fromAsset(bundle, { exclude: ["*.map"] }),
        memorySize: sizing.memorySize,
        timeout: streams(name) ? props.streamTimeout : sizing.timeout,
        environment: daemonEnvironment(props.environment),
        loggingFormat: lambda.LoggingFormat.JSON,
        applicationLogLevelV2: lambda.ApplicationLogLevel.INFO,
        systemLogLevelV2: lambda.SystemLogLevel.WARN,
        logGroup,
        ...(sizing.retryAttempts !== undefined ? { retryAttempts: sizing.retryAttempts } : {}),
        ...(props.reservedConcurrency ? { reservedConcurrentExecutions: props.reservedConcurrency[name] } : {}),
      });
      acknowledge(fn, {
        id: "AwsSolutions-L1",
        reason:
          "Pinned to Node.js 22 on purpose: the bundles target node22 and are tested on it; move runtime and esbuild target together.",
      });
      functions[name] = fn;
    }
    this.functions = functions;
  }

  /** Adds variables to every handler, e.g. one that depends on a resource created after them. */
  addEnvironment(vars: DaemonEnvironment): void {
    addDaemonEnvironment(Object.values(this.functions), vars);
  }
}
