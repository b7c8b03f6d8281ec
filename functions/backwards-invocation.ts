/** Lambda (response streaming): plugin Lambdas calling back into Dify through the daemon. */
import { streamingHandler } from "../src/http/apigateway.js";
import { groupRuntime } from "../src/routes/groups.js";

export const handler = streamingHandler(groupRuntime("backwards-invocation"));
