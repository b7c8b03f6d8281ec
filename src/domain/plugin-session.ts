/**
 * One plugin session as the daemon and a plugin exchange it, whatever carries it (a child's
 * stdio, a debugging socket, a Lambda response stream): the request envelope the daemon sends,
 * what the plugin sends back, and its calls back into Dify. The SDK's wire format for these is
 * read and written by plugin-protocol.ts (dify_plugin core/entities/plugin/io.py).
 */

/** The envelope the daemon sends to a plugin for one session (one stdio line / one serverless body). */
export interface PluginRequest {
  session_id: string;
  event: "request";
  conversation_id?: string | null;
  message_id?: string | null;
  app_id?: string | null;
  endpoint_id?: string | null;
  context?: Record<string, unknown> | null;
  /** `{user_id, type, action, ...action fields}` */
  data: Record<string, unknown>;
}

export interface PluginErrorData {
  error_type: string;
  message: string;
  args?: Record<string, unknown> | null;
}

/** What a plugin sends back for a session, after backwards invocations were handled by the runtime. */
export type SessionOutput =
  | { type: "stream"; data: unknown }
  | { type: "error"; data: PluginErrorData }
  | { type: "end" };

/** A plugin's call back into Dify (`invoke` session message). */
export interface BackwardsInvocationRequest {
  type: string;
  backwards_request_id: string;
  request: Record<string, unknown>;
}

/** One reply event to a backwards invocation. */
export interface BackwardsInvocationEvent {
  backwards_request_id: string;
  event: "response" | "error" | "end";
  message: string;
  data: unknown;
}
