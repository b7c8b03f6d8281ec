/**
 * Public endpoint calls `/e/{hook_id}/{path}` (upstream internal/server/endpoint.go and
 * internal/service/endpoint.go): the raw request goes to the plugin as `invoke_endpoint`, hex
 * encoded with the decrypted settings; the plugin answers `{status, headers}` then `{result: hex}`
 * chunks, which go back as a plain HTTP response: the status, the first value of each header,
 * and the body bytes as they come.
 */

import { errorEnvelope } from "../domain/envelope.js";
import { badRequest, type DaemonError, internalError, notFound, pluginNotFound } from "../domain/errors.js";
import { canonicalHeaderKey, type IncomingEndpointRequest, rawEndpointRequest } from "../domain/raw-http-request.js";
import type { SessionOutput } from "../ports/plugin-runtime.js";
import type { Endpoints } from "../stores/endpoints.js";
import type { Installations } from "../stores/installations.js";
import type { PackageRecords } from "../stores/package-records.js";
import type { Dispatcher } from "./dispatcher.js";
import type { EndpointSettingsVault } from "./endpoint-settings-vault.js";

/** Upstream reads at most 10 MB of an endpoint request body (and silently cuts the rest; we refuse). */
export const MAX_ENDPOINT_BODY_BYTES = 10 * 1024 * 1024;

const INVOKE_ENDPOINT = { type: "endpoint", action: "invoke_endpoint" };
/** Connection-level headers a plugin cannot meaningfully set on our response. */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection"]);

interface EndpointChunk {
  status?: number;
  headers?: Record<string, string>;
  result?: string;
}

/** What the caller of an endpoint gets: a refusal in the daemon's envelope, or the plugin's answer. */
export type EndpointAnswer =
  | { kind: "refused"; status: number; error: DaemonError }
  | { kind: "answer"; status: number; headers: Record<string, string>; body: AsyncIterable<Uint8Array | string> };

const errorJson = (error: DaemonError, status: number): EndpointAnswer => ({ kind: "refused", status, error });

export class EndpointInvoker {
  constructor(
    private readonly endpoints: Endpoints,
    private readonly installations: Installations,
    private readonly packages: PackageRecords,
    private readonly vault: EndpointSettingsVault,
    private readonly dispatcher: Dispatcher,
  ) {}

  async invoke(hookId: string, req: IncomingEndpointRequest): Promise<EndpointAnswer> {
    const endpoint = await this.endpoints.findByHook(hookId);
    // Upstream's shapes: an unknown hook is a BadRequestError, a disabled one a NotFoundError, both HTTP 404.
    if (!endpoint) return errorJson(badRequest("endpoint not found"), 404);
    const stored = await this.installations.get(endpoint.tenant_id, endpoint.plugin_id);
    if (!stored) return errorJson(badRequest("plugin installation not found"), 404);
    if (!endpoint.enabled) return errorJson(notFound("endpoint not found"), 404);
    if (req.body.length > MAX_ENDPOINT_BODY_BYTES) {
      return errorJson(
        badRequest(`request body too large: endpoint requests are limited to ${MAX_ENDPOINT_BODY_BYTES} bytes`),
        413,
      );
    }
    const uniqueIdentifier = stored.installation.plugin_unique_identifier;
    const schema = (await this.packages.get(uniqueIdentifier))?.declaration.endpoint?.settings;
    if (!schema) return errorJson(pluginNotFound(), 404);

    let settings: Record<string, unknown>;
    try {
      settings = await this.vault.decrypt(endpoint.tenant_id, "", endpoint.id, endpoint.settings, schema);
    } catch (err) {
      return errorJson(internalError((err as Error).message), 500);
    }

    const raw = rawEndpointRequest(req, hookId);
    const { outputs, timedOut } = this.dispatcher.run({
      tenantId: endpoint.tenant_id,
      uniqueIdentifier,
      action: INVOKE_ENDPOINT,
      userId: "",
      data: { raw_http_request: raw.toString("hex"), settings },
      endpointId: endpoint.id,
    });
    return this.respond(outputs[Symbol.asyncIterator](), timedOut);
  }

  /** Reads the plugin's status and headers, then streams the body. */
  private async respond(outputs: AsyncIterator<SessionOutput>, timedOut: () => boolean): Promise<EndpointAnswer> {
    let status = 200;
    const headers: Record<string, string> = {};
    let first: Buffer | undefined;
    for (;;) {
      const next = await outputs.next();
      if (next.done || next.value.type === "end") {
        if (timedOut()) return errorJson(internalError("killed by timeout"), 500);
        break;
      }
      const output = next.value;
      if (output.type === "error") return errorJson(internalError(pluginErrorText(output.data)), 500);
      const chunk = output.data as EndpointChunk;
      if (typeof chunk.status === "number") status = chunk.status;
      for (const [name, value] of Object.entries(chunk.headers ?? {})) {
        const key = canonicalHeaderKey(name);
        if (!HOP_BY_HOP.has(key.toLowerCase()) && !(key in headers)) headers[key] = String(value);
      }
      if (typeof chunk.result === "string") {
        first = Buffer.from(chunk.result, "hex");
        break;
      }
    }
    return { kind: "answer", status, headers, body: restOfBody(first, outputs, timedOut) };
  }
}

async function* restOfBody(
  first: Buffer | undefined,
  outputs: AsyncIterator<SessionOutput>,
  timedOut: () => boolean,
): AsyncGenerator<Uint8Array | string> {
  if (first === undefined) return;
  if (first.length) yield first;
  for (;;) {
    const next = await outputs.next();
    if (next.done || next.value.type === "end") break;
    const output = next.value;
    if (output.type === "error") {
      // Headers are out: like upstream, the error text is appended to the body.
      yield pluginErrorText(output.data);
      return;
    }
    const result = (output.data as EndpointChunk).result;
    if (typeof result === "string" && result.length) yield Buffer.from(result, "hex");
  }
  if (timedOut()) yield JSON.stringify(errorEnvelope(internalError("killed by timeout")));
}

/** A plugin error as upstream's ErrorResponse.Error() prints it. */
function pluginErrorText(data: { message: string; error_type: string; args?: Record<string, unknown> | null }): string {
  return JSON.stringify({ message: data.message, error_type: data.error_type, args: data.args ?? null });
}
