/**
 * Backwards invocation (plugin → Dify). Until the inner-API bridge is configured, every call is
 * answered with a clear error event, so the plugin's SDK raises instead of waiting.
 */
import type { BackwardsInvocationHandler } from "../ports/plugin-runtime.js";
import type { BackwardsFactory } from "./dispatcher.js";

export const unavailableBackwards: BackwardsFactory = (): BackwardsInvocationHandler =>
  async function* (request) {
    yield {
      backwards_request_id: request.backwards_request_id,
      event: "error",
      message: `backwards invocation "${request.type}" is not available on this daemon yet`,
      data: null,
    };
    yield { backwards_request_id: request.backwards_request_id, event: "end", message: "", data: null };
  };
