/**
 * `POST /backwards-invocation/transaction`: a Lambda plugin's backwards invocation. Public route
 * authenticated per session: `Dify-Plugin-Session-ID` names a session the daemon registered, and
 * `X-Dify-Plugin-Callback-Token` must be the token issued for that session and its tenant. The
 * answer streams as upstream frames it: each event the full `backwards_response` message JSON
 * followed by a blank line, a bare blank line as heartbeat every 25 s, closed after `end`.
 */
import { z } from "zod";
import { backwardsResponseLine } from "../domain/plugin-protocol.js";
import { verifySessionCallbackToken } from "../domain/session-token.js";
import { type DaemonRequest, header } from "../http/daemon-request.js";
import { type DaemonResponse, json } from "../http/daemon-response.js";
import type { Route } from "../http/router.js";
import type { BackwardsInvocationEvent, PluginRequest } from "../ports/plugin-runtime.js";
import type { BackwardsInvocations } from "../services/backwards-invocation.js";
import type { PluginSession, PluginSessions } from "../stores/plugin-sessions.js";

/** Upstream reads at most 6 MiB of a transaction body. */
const MAX_BODY_BYTES = 6 * 1024 * 1024;
const HEARTBEAT_MS = 25_000;
/** Upstream MAX_SERVERLESS_TRANSACTION_TIMEOUT. */
const TRANSACTION_TIMEOUT_MS = 300_000;

const invokeEvent = z.object({
  event: z.literal("session"),
  session_id: z.string().min(1),
  data: z.object({
    type: z.literal("invoke"),
    data: z.object({
      type: z.string().min(1),
      backwards_request_id: z.string().min(1),
      request: z.record(z.string(), z.unknown()),
    }),
  }),
});

export interface TransactionDeps {
  sessions: PluginSessions;
  backwards: BackwardsInvocations;
  /** The key callback tokens are signed with (the daemon key, as the Lambda runtime signs them). */
  callbackSecret: () => string | Promise<string>;
  heartbeatMs?: number;
}

/** The backwards-invocation handler's routes (the composition root signs callbacks with the daemon key). */
export function backwardsInvocationRoutes(deps: TransactionDeps): Route[] {
  return [
    {
      method: "POST",
      pattern: "/backwards-invocation/transaction",
      public: true,
      handler: (req) => transaction(deps, req),
    },
  ];
}

/** A bare response event (not the session envelope), as upstream answers requests it cannot serve. */
const refusal = (status: number, requestId: string, message: string, data: Record<string, unknown>): DaemonResponse =>
  json({ backwards_request_id: requestId, event: "error", message, data }, status);

async function transaction(deps: TransactionDeps, req: DaemonRequest): Promise<DaemonResponse> {
  if (req.body.length > MAX_BODY_BYTES)
    return refusal(413, "", `request body too large: at most ${MAX_BODY_BYTES} bytes`, {
      error_type: "PayloadTooLarge",
    });
  let parsed: z.infer<typeof invokeEvent>;
  try {
    parsed = invokeEvent.parse(JSON.parse(req.body.toString("utf8")));
  } catch (err) {
    return refusal(
      400,
      "",
      `invalid backwards invocation request: ${err instanceof z.ZodError ? err.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ") : (err as Error).message}`,
      {
        error_type: "BadRequest",
      },
    );
  }
  const invoke = parsed.data.data;
  const requestId = invoke.backwards_request_id;
  const sessionId = header(req, "dify-plugin-session-id") ?? "";
  if (sessionId !== parsed.session_id) {
    return refusal(400, requestId, "Dify-Plugin-Session-ID does not match the event's session_id", {
      error_type: "BadRequest",
      session_id: sessionId,
    });
  }
  const session = await deps.sessions.get(sessionId);
  if (!session) {
    return refusal(400, requestId, "failed to get session info from cache", {
      error_type: "SessionNotFound",
      detail: "session not found or expired",
      session_id: sessionId,
    });
  }
  if (
    !verifySessionCallbackToken(
      header(req, "x-dify-plugin-callback-token"),
      sessionId,
      session.tenant_id,
      await deps.callbackSecret(),
    )
  ) {
    return refusal(401, requestId, "invalid callback token for this session", {
      error_type: "Unauthorized",
      session_id: sessionId,
    });
  }

  const signal = AbortSignal.timeout(TRANSACTION_TIMEOUT_MS);
  const events = deps.backwards.handle(
    {
      sessionId,
      tenantId: session.tenant_id,
      userId: session.user_id,
      uniqueIdentifier: session.plugin_unique_identifier,
      accessType: session.access_type,
    },
    invoke,
    signal,
  );
  return {
    kind: "stream",
    status: 200,
    headers: { "content-type": "text/event-stream", "cache-control": "no-cache" },
    body: framed(events, envelopeOf(session), deps.heartbeatMs ?? HEARTBEAT_MS),
  };
}

/** The request envelope whose ids each backwards_response message echoes. */
function envelopeOf(s: PluginSession): PluginRequest {
  return {
    session_id: s.session_id,
    event: "request",
    conversation_id: s.conversation_id,
    message_id: s.message_id,
    app_id: s.app_id,
    endpoint_id: s.endpoint_id,
    context: s.context,
    data: {},
  };
}

/** Each event as `<message JSON>\n\n`, with `\n\n` heartbeats while nothing else is sent. */
async function* framed(
  events: AsyncIterator<BackwardsInvocationEvent>,
  envelope: PluginRequest,
  heartbeatMs: number,
): AsyncGenerator<string> {
  let pending = events.next();
  for (;;) {
    let timer: NodeJS.Timeout | undefined;
    const beat = new Promise<"beat">((resolve) => (timer = setTimeout(() => resolve("beat"), heartbeatMs)));
    const winner = await Promise.race([pending, beat]);
    clearTimeout(timer);
    if (winner === "beat") {
      yield "\n\n";
      continue;
    }
    if (winner.done) return;
    yield `${backwardsResponseLine(envelope, winner.value)}\n`;
    if (winner.value.event === "end") return;
    pending = events.next();
  }
}
