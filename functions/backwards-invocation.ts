/**
 * Lambda (response streaming): plugin Lambdas calling back into Dify through the daemon. A slow
 * answer from Dify gets keep-alive lines (the bootstrap skips blank lines), as API Gateway cuts
 * streams silent for 5 minutes; the timing is the composition root's (src/daemon.ts).
 */

import { streamingHandler } from "../src/http/apigateway.js";
import { backwardsInvocationRoutes } from "../src/routes/backwards-invocation.js";
import { groupRuntime } from "../src/routes/group-runtime.js";
import { withKeepAlive } from "../src/routes/stream-keepalive.js";

export const handler = streamingHandler(groupRuntime("backwards-invocation", withKeepAlive(backwardsInvocationRoutes)));
