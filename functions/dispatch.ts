/** Lambda (response streaming): plugin invocations, `/plugin/{tenant}/dispatch/*` and `/v2/invoke/dispatch/*`. */
import { streamingHandler } from "../src/http/apigateway.js";
import { groupRuntime } from "../src/routes/groups.js";

export const handler = streamingHandler(groupRuntime("dispatch"));
