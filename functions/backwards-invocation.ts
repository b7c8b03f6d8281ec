/**
 * Lambda (response streaming): plugin Lambdas calling back into Dify through the daemon. A slow
 * answer from Dify gets keep-alive lines (the bootstrap skips blank lines), as API Gateway cuts
 * streams silent for 5 minutes; there is no first-token timeout to keep here.
 */

import { streamingHandler } from "../src/http/apigateway.js";
import { backwardsInvocationGroup } from "../src/routes/backwards-invocation.js";
import { groupRuntime } from "../src/routes/group-runtime.js";
import { withKeepAlive } from "../src/routes/stream-keepalive.js";

const keepAlive = withKeepAlive(backwardsInvocationGroup, (d) => ({
  idleMs: d.config.streamKeepAlive.idleMs,
  firstChunkWaitMs: d.config.streamKeepAlive.idleMs,
}));

export const handler = streamingHandler(groupRuntime(keepAlive));
