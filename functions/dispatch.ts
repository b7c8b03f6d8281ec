/**
 * Lambda (response streaming): plugin invocations, `/plugin/{tenant}/dispatch/*` and
 * `/v2/invoke/dispatch/*`, and the raw-bytes answers (assets, extract-asset), which API Gateway
 * hands to Dify as bytes only from a streaming integration (src/domain/route-groups.ts). Silent
 * streams get keep-alive lines, as API Gateway cuts them after 5 minutes.
 */

import { streamingHandler } from "../src/http/apigateway.js";
import { assetRoutes } from "../src/routes/assets.js";
import { dispatchRoutes } from "../src/routes/dispatch.js";
import { type GroupRoutes, groupRuntime } from "../src/routes/group-runtime.js";
import { withKeepAlive } from "../src/routes/stream-keepalive.js";

const routes: GroupRoutes<"dispatch"> = (deps) => [...dispatchRoutes(deps), ...assetRoutes(deps)];

export const handler = streamingHandler(groupRuntime("dispatch", withKeepAlive(routes)));
