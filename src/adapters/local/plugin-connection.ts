/**
 * The SDK's full-duplex JSON-lines protocol over any line transport (a child's stdio, a debugging
 * socket): session requests out, session messages in, routed by session id; backwards
 * invocations are answered on the same transport. The owner feeds it lines and says when the
 * transport is gone.
 */
import {
  backwardsResponseLine,
  parsePluginEvents,
  runtimeError,
  toSessionOutput,
} from "../../domain/plugin-protocol.js";
import { logger } from "../../logger.js";
import type { InvokeOptions, PluginRequest, SessionOutput } from "../../ports/plugin-runtime.js";
import { AsyncQueue } from "../../shared/async-queue.js";
import type { OversizedLine } from "../../shared/bounded-lines.js";

interface OpenSession {
  request: PluginRequest;
  output: AsyncQueue<SessionOutput>;
  options: InvokeOptions;
  finish(last?: SessionOutput): void;
}

export class PluginConnection {
  private readonly sessions = new Map<string, OpenSession>();
  /** Set once the transport is gone: later sessions end at once with it. */
  private closedReason: string | undefined;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly uniqueIdentifier: string,
    private readonly write: (line: string) => void,
  ) {}

  /** Runs one session, sent at once. Ends on the plugin's `end`, on abort, or when the transport closes. */
  invoke(request: PluginRequest, options: InvokeOptions): AsyncIterable<SessionOutput> {
    // A consumer that stops reading (a client gone, an error already forwarded) ends the session.
    const output = new AsyncQueue<SessionOutput>(() => session.finish());
    const onAbort = () => session.finish();
    const session: OpenSession = {
      request,
      output,
      options,
      finish: (last) => {
        // The session leaves the connection however it ends, even when its consumer closed the
        // output first: a leaked session would hold drains and idle stops forever.
        if (this.sessions.delete(request.session_id) && this.sessions.size === 0) this.notifyIdle();
        // A long execution timeout must not keep a finished session reachable until it fires.
        options.signal.removeEventListener("abort", onAbort);
        if (output.isClosed) return;
        if (last) output.push(last);
        output.push({ type: "end" });
        output.close();
      },
    };
    options.signal.addEventListener("abort", onAbort, { once: true });
    if (options.signal.aborted) session.finish();
    else if (this.closedReason !== undefined) session.finish(runtimeError(this.closedReason));
    else this.send(session);
    return output;
  }

  /**
   * Writes the session's request. One that cannot be serialised (the edge refuses deep JSON; this
   * is the net under it) or written ends its session instead of throwing.
   */
  private send(session: OpenSession): void {
    const { request } = session;
    let line: string;
    try {
      line = `${JSON.stringify(request)}\n`;
    } catch (err) {
      return session.finish(runtimeError(`the request could not be sent to the plugin: ${(err as Error).message}`));
    }
    this.sessions.set(request.session_id, session);
    try {
      this.write(line);
    } catch (err) {
      session.finish(runtimeError(`the request could not be sent to the plugin: ${String(err)}`));
    }
  }

  /** Handles one line from the plugin; `onHeartbeat` runs for each heartbeat in it. */
  handleLine(line: string, onHeartbeat: () => void): void {
    for (const event of parsePluginEvents(line)) {
      if (event.event === "heartbeat") onHeartbeat();
      else if (event.event === "session") this.route(event.session_id, event.data);
      else if (event.event === "log")
        logger.info({ plugin: this.uniqueIdentifier, level: event.data.level }, event.data.message);
      else logger.warn({ plugin: this.uniqueIdentifier, data: event.data }, "plugin reported an error");
    }
  }

  /**
   * The transport skipped a line longer than its cap. The session it belonged to ends with an
   * error naming the cap; a session message whose head names no session ends every open session
   * (which one would never get its answer); anything else (a log, a stray print) is only logged.
   */
  handleOversizedLine({ head, limit }: OversizedLine): void {
    const reason = `plugin output line exceeds the maximum of ${limit} bytes (PLUGIN_RUNTIME_MAX_BUFFER_SIZE) and was dropped`;
    const sessionId = /"session_id"\s*:\s*"([^"\\]{1,256})"/.exec(head)?.[1];
    logger.warn({ plugin: this.uniqueIdentifier, limit, session: sessionId }, "plugin output line too long");
    if (sessionId) this.sessions.get(sessionId)?.finish(runtimeError(reason));
    else if (/"event"\s*:\s*"session"/.test(head))
      for (const session of [...this.sessions.values()]) session.finish(runtimeError(reason));
  }

  /** The transport is gone: every open session ends with `reason`. */
  closeAll(reason: string): void {
    this.closedReason = reason;
    for (const session of [...this.sessions.values()]) session.finish(runtimeError(reason));
    this.notifyIdle();
  }

  /** Sessions still open on this transport. */
  get openSessions(): number {
    return this.sessions.size;
  }

  /** Resolves once no session is open (at once if none is). */
  whenIdle(): Promise<void> {
    if (this.sessions.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private notifyIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  private route(sessionId: string, message: Parameters<typeof toSessionOutput>[0]): void {
    const session = this.sessions.get(sessionId);
    if (!session) return;
    if (message.type === "invoke") {
      void this.answerBackwards(session, message.data);
      return;
    }
    const output = toSessionOutput(message);
    if (!output) return;
    if (output.type === "end") session.finish();
    else session.output.push(output);
  }

  private async answerBackwards(
    session: OpenSession,
    request: { type: string; backwards_request_id: string; request: Record<string, unknown> },
  ) {
    try {
      for await (const event of session.options.backwards(request)) {
        this.write(backwardsResponseLine(session.request, event));
      }
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      for (const event of ["error", "end"] as const) {
        this.write(
          backwardsResponseLine(session.request, {
            backwards_request_id: request.backwards_request_id,
            event,
            message,
            data: null,
          }),
        );
      }
    }
  }
}
