/** Lambda (response streaming): plugin invocations, `/plugin/{tenant}/dispatch/*` and `/v2/invoke/dispatch/*`. */
import { streamingHandler } from "../src/http/apigateway.js";
import { groupRuntime } from "../src/routes/group-runtime.js";
import { dispatchRoutes } from "../src/routes/dispatch.js";

export const handler = streamingHandler(groupRuntime(dispatchRoutes));
