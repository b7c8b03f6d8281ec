/** Lambda (response streaming): plugin Lambdas calling back into Dify through the daemon. */
import { streamingHandler } from "../src/http/apigateway.js";
import { groupRuntime } from "../src/routes/group-runtime.js";
import { backwardsInvocationGroup } from "../src/routes/backwards-invocation.js";

export const handler = streamingHandler(groupRuntime(backwardsInvocationGroup));
