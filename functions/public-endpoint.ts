/** Lambda (response streaming): public plugin endpoints `/e/{hook_id}/*`, answered as raw HTTP. */
import { streamingHandler } from "../src/http/apigateway.js";
import { groupRuntime } from "../src/routes/group-runtime.js";
import { publicEndpointGroup } from "../src/routes/public-endpoint.js";

export const handler = streamingHandler(groupRuntime("public-endpoint", publicEndpointGroup));
