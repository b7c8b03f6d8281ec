/**
 * For runtimes whose plugins call back over HTTP (Lambda): wraps the runtime so each session is
 * registered in the item store before the plugin starts, and forgotten when it ends. The callback
 * token only proves "this session, this tenant"; the record tells the daemon instance that
 * receives the callback who the user is, which plugin runs, and what the session was invoked for.
 */

import type { PluginUniqueIdentifier } from "../domain/identifier.js";
import { runtimeError } from "../domain/plugin-protocol.js";
import type { InvokeOptions, PluginRequest, PluginRuntime, SessionOutput } from "../ports/plugin-runtime.js";
import type { PluginSessions } from "../stores/plugin-sessions.js";

export function registeringSessions(runtime: PluginRuntime, sessions: PluginSessions): PluginRuntime {
  return {
    install: (plugin, progress) => runtime.install(plugin, progress),
    isInstalled: (uid) => runtime.isInstalled(uid),
    remove: (uid) => runtime.remove(uid),
    close: () => runtime.close(),
    invoke: (uid, request, options) => invokeRegistered(runtime, sessions, uid, request, options),
  };
}

async function* invokeRegistered(
  runtime: PluginRuntime,
  sessions: PluginSessions,
  uniqueIdentifier: PluginUniqueIdentifier,
  request: PluginRequest,
  options: InvokeOptions,
): AsyncGenerator<SessionOutput> {
  const data = request.data;
  try {
    await sessions.register({
      session_id: request.session_id,
      tenant_id: options.tenantId,
      user_id: typeof data.user_id === "string" ? data.user_id : "",
      plugin_unique_identifier: uniqueIdentifier,
      access_type: String(data.type ?? ""),
      access_action: String(data.action ?? ""),
      conversation_id: request.conversation_id ?? null,
      message_id: request.message_id ?? null,
      app_id: request.app_id ?? null,
      endpoint_id: request.endpoint_id ?? null,
      context: request.context ?? null,
    });
  } catch (err) {
    yield runtimeError(`cannot register the plugin session: ${(err as Error).message}`);
    yield { type: "end" };
    return;
  }
  try {
    yield* runtime.invoke(uniqueIdentifier, request, options);
  } finally {
    // Best effort: the record expires on its own if this fails or the process dies.
    await sessions.forget(request.session_id).catch(() => undefined);
  }
}
