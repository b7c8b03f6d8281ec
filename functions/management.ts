/** Lambda: plugin management, assets, health, and upstream's 404 for unknown routes. */
import { bufferedHandler } from "../src/http/apigateway.js";
import { groupRuntime } from "../src/routes/groups.js";

export const handler = bufferedHandler(groupRuntime("management"));
