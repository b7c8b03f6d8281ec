/**
 * `/e/{hook_id}/{path}` for every method: public plugin endpoints, no daemon key (the hook id is
 * the capability). Absent when PLUGIN_ENDPOINT_ENABLED=false, so calls get upstream's 404.
 */
import type { DaemonResponse } from "../http/daemon-response.js";
import { fail } from "../http/daemon-response.js";
import type { Route } from "../http/router.js";
import type { EndpointAnswer, EndpointInvoker } from "../services/endpoint-invoker.js";

export interface PublicEndpointDeps {
  invoker: EndpointInvoker;
  /** PLUGIN_ENDPOINT_ENABLED. */
  enabled: boolean;
}

/** The public-endpoint handler's routes. */
export const publicEndpointGroup = (deps: PublicEndpointDeps): Route[] =>
  publicEndpointRoutes(deps.invoker, deps.enabled);

export function publicEndpointRoutes(invoker: EndpointInvoker, enabled: boolean): Route[] {
  if (!enabled) return [];
  return [
    {
      method: "*",
      pattern: "/e/:hook_id/*path",
      public: true,
      handler: async (req) =>
        asResponse(
          await invoker.invoke(req.params.hook_id ?? "", {
            method: req.method,
            path: `/${req.params.path ?? ""}`,
            query: req.query,
            headers: req.headers,
            body: req.body,
          }),
        ),
    },
  ];
}

const asResponse = (answer: EndpointAnswer): DaemonResponse =>
  answer.kind === "refused"
    ? fail(answer.error, answer.status)
    : { kind: "stream", status: answer.status, headers: answer.headers, body: answer.body };
