/** Lambda: plugin management, assets, health, and upstream's 404 for unknown routes. */
import { bufferedHandler } from "../src/http/apigateway.js";
import { groupRuntime } from "../src/routes/group-runtime.js";
import { managementGroup } from "../src/routes/management.js";

export const handler = bufferedHandler(groupRuntime("management", managementGroup));
