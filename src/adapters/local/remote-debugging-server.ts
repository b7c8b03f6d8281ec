/**
 * Dify's remote debugging (upstream internal/core/debugging_runtime): a plugin started with
 * INSTALL_METHOD=remote dials this TCP server, sends a handshake with its tenant's debugging key,
 * then its declarations and icon assets, then `end`. From then on the socket speaks the stdio
 * session protocol in both directions. While connected the plugin is installed for the tenant
 * with runtime_type "remote"; when the socket closes the installation goes away again.
 */
import { createServer, type Server, type Socket } from "node:net";
import type { PluginUniqueIdentifier } from "../../domain/identifier.js";
import { type PluginDeclaration, pluginDeclarationObjectSchema } from "../../domain/manifest.js";
import { extractAssets } from "../../domain/plugin-assets.js";
import type { Installation, RemotePluginRegistry } from "../../ports/remote-plugins.js";
import { readBoundedLines } from "../../shared/bounded-lines.js";
import { PluginConnection } from "./plugin-connection.js";

export interface RemoteAttachable {
  attachRemote(uniqueIdentifier: PluginUniqueIdentifier, connection: PluginConnection): void;
  detachRemote(uniqueIdentifier: PluginUniqueIdentifier, connection: PluginConnection): void;
}

export interface RemoteDebuggingOptions {
  host: string;
  port: number;
  /** Longest line after the handshake (PLUGIN_RUNTIME_MAX_BUFFER_SIZE). */
  lineMaxBytes: number;
  /** Upstream closes a connection that has not completed its handshake after 10 s. */
  handshakeTimeoutMs?: number;
  /** Upstream closes a connection silent (no heartbeat) for 60 s. */
  idleTimeoutMs?: number;
  /**
   * Plugins registered at once (PLUGIN_REMOTE_INSTALLING_MAX_CONN); as many more may be
   * registering. A connection beyond either is told the server is busy.
   */
  maxConnections: number;
}

/** Upstream's words when it turns a plugin away (internal/core/debugging_runtime/hooks.go @bdb5642a). */
const BUSY = "server is busy now, please try again later";

const MAX_ASSET_BYTES = 50 * 1024 * 1024;
/**
 * The SDK's handshake is one short line (`{"type":"handshake","data":{"key":…}}`). Upstream's
 * codec buffers without a cap (internal/core/debugging_runtime/codec.go, bdb5642), so an
 * unauthenticated peer could make it hold any amount; here a pre-handshake line stops at 64 KiB.
 */
const HANDSHAKE_MAX_LINE_BYTES = 64 * 1024;
/** How long a connection told why it is closed stays open for the words to reach its peer. */
const CLOSE_LINGER_MS = 500;
/** What is read and dropped meanwhile, to see a well-behaved peer's own close; then TCP holds the rest back. */
const CLOSE_DISCARD_BYTES = 64 * 1024;
/** Past this many lingering at once (a flood of refused connections), a close is immediate again. */
const MAX_LINGERING = 64;
const DECLARATION_KINDS = {
  tool_declaration: "tool",
  model_declaration: "model",
  endpoint_declaration: "endpoint",
  agent_strategy_declaration: "agent_strategy",
  datasource_declaration: "datasource",
  trigger_declaration: "trigger",
} as const;

export async function startRemoteDebuggingServer(
  plugins: RemotePluginRegistry,
  runtime: RemoteAttachable,
  options: RemoteDebuggingOptions,
): Promise<Server> {
  const counts: ConnectionCounts = { registering: 0, registered: 0, lingering: 0, limit: options.maxConnections };
  const server = createServer((socket) => {
    // Refused before anything is read: a flood of silent connections holds nothing past the limit
    // but the few told so while their answer reaches them (sayAndClose).
    if (counts.registering >= counts.limit) {
      socket.on("error", () => undefined);
      sayAndClose(socket, BUSY, counts);
      return;
    }
    void new RemotePlugin(plugins, runtime, socket, options, counts).run();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return server;
}

/**
 * Writes `line`, then closes. Closing at once, with the peer's bytes still unread, makes the kernel
 * answer with a reset; a peer still writing then fails its write and drops the socket before it
 * reads the line (seen with an endless handshake line). So the socket stays open CLOSE_LINGER_MS
 * after its last line, or until the peer closes: what arrives meanwhile is dropped up to
 * CLOSE_DISCARD_BYTES, and past that left unread, so TCP's flow control stops the peer at no
 * memory cost here.
 */
function sayAndClose(socket: Socket, line: string, counts: ConnectionCounts): void {
  if (counts.lingering >= MAX_LINGERING) {
    socket.end(`${line}\n`);
    socket.destroySoon();
    return;
  }
  counts.lingering += 1;
  let discarded = 0;
  socket.on("data", (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > CLOSE_DISCARD_BYTES) socket.pause();
  });
  socket.resume();
  socket.end(`${line}\n`);
  const linger = setTimeout(() => socket.destroy(), CLOSE_LINGER_MS);
  socket.once("close", () => {
    clearTimeout(linger);
    counts.lingering -= 1;
  });
}

/** Connections still registering, and registered plugins, each under `limit`; closes lingering. */
interface ConnectionCounts {
  registering: number;
  registered: number;
  lingering: number;
  limit: number;
}

/** One plugin connection: registration first, then sessions. */
class RemotePlugin {
  /** Which count this connection is in, if any. */
  private counted: "registering" | "registered" | undefined;
  private tenantId: string | undefined;
  private manifest: Record<string, unknown> | undefined;
  private readonly providers: Partial<Record<(typeof DECLARATION_KINDS)[keyof typeof DECLARATION_KINDS], unknown>> = {};
  private readonly assets = new Map<string, Buffer[]>();
  private assetBytes = 0;
  private connection: PluginConnection | undefined;
  private installation: Installation | undefined;
  private lastActive = Date.now();
  private closed = false;
  /** Registration messages are handled one at a time, in order (the key lookup is async). */
  private pending: Promise<void> = Promise.resolve();
  private stopReading: () => void = () => undefined;

  constructor(
    private readonly plugins: RemotePluginRegistry,
    private readonly runtime: RemoteAttachable,
    private readonly socket: Socket,
    private readonly options: RemoteDebuggingOptions,
    private readonly counts: ConnectionCounts,
  ) {
    this.countAs("registering");
  }

  private countAs(next: "registering" | "registered" | undefined): void {
    if (this.counted) this.counts[this.counted] -= 1;
    if (next) this.counts[next] += 1;
    this.counted = next;
  }

  async run(): Promise<void> {
    const { socket } = this;
    socket.setNoDelay(true);
    const handshakeTimer = setTimeout(() => {
      if (!this.tenantId) socket.destroy();
    }, this.options.handshakeTimeoutMs ?? 10_000);
    const idleTimeout = this.options.idleTimeoutMs ?? 60_000;
    const idle = setInterval(
      () => {
        if (Date.now() - this.lastActive > idleTimeout) socket.destroy();
      },
      Math.min(idleTimeout, 5_000),
    );
    idle.unref();
    // Until the handshake names a tenant a line may be tiny; then as long as a plugin's stdout line.
    const lineLimit = () => (this.tenantId ? this.options.lineMaxBytes : HANDSHAKE_MAX_LINE_BYTES);
    this.stopReading = readBoundedLines(
      socket,
      lineLimit,
      (line) => {
        if (line.trim() !== "") this.onLine(line);
      },
      (oversized) => {
        if (this.connection) this.connection.handleOversizedLine(oversized);
        else
          this.fail(
            `${this.tenantId ? "registration" : "handshake"} failed, message too large (at most ${oversized.limit} bytes)`,
          );
      },
    );
    socket.on("error", () => undefined);
    socket.on("close", () => {
      clearTimeout(handshakeTimer);
      clearInterval(idle);
      this.countAs(undefined);
      this.closed = true;
      void this.pending.then(() => this.disconnect());
    });
  }

  private onLine(line: string): void {
    this.lastActive = Date.now();
    if (this.connection) {
      this.connection.handleLine(line, () => undefined);
      return;
    }
    this.pending = this.pending
      .then(() => this.register(line))
      .catch((err: unknown) => this.fail(err instanceof Error ? err.message : String(err)));
  }

  /** Closes with a message line, as upstream does when registration fails. */
  private fail(message: string): void {
    if (this.closed) return;
    this.closed = true;
    // No more lines are read: a peer that keeps sending costs no memory until the socket is gone.
    this.stopReading();
    sayAndClose(this.socket, message, this.counts);
  }

  private async register(line: string): Promise<void> {
    if (this.closed || this.connection) return;
    let message: { type?: unknown; data?: unknown };
    try {
      message = JSON.parse(line) as typeof message;
      if (typeof message !== "object" || message === null || typeof message.type !== "string") throw new Error();
    } catch {
      throw new Error("handshake failed, invalid handshake message");
    }
    const { type, data } = message as { type: string; data: unknown };
    if (type === "handshake") {
      if (this.tenantId) throw new Error("handshake already completed");
      const key = (data as { key?: unknown } | null)?.key;
      if (typeof key !== "string" || key === "") throw new Error("handshake failed, invalid handshake message");
      const tenantId = await this.plugins.tenantOf(key);
      if (!tenantId) throw new Error("handshake failed, invalid key");
      this.tenantId = tenantId;
      return;
    }
    // Upstream ignores registration messages before a completed handshake's key is known only by
    // failing them later; here nothing but the handshake is accepted first.
    if (!this.tenantId) throw new Error("handshake failed, invalid handshake message");
    if (type === "manifest_declaration") {
      if (this.manifest) throw new Error("declaration already registered");
      if (typeof data !== "object" || data === null) throw new Error("handshake failed, invalid plugin declaration");
      this.manifest = data as Record<string, unknown>;
    } else if (type in DECLARATION_KINDS) {
      const kind = DECLARATION_KINDS[type as keyof typeof DECLARATION_KINDS];
      if (kind in this.providers) throw new Error(`${kind} declaration already registered`);
      const list = Array.isArray(data) ? data : [];
      this.providers[kind] = list[0];
    } else if (type === "asset_chunk") {
      const chunk = data as { filename?: unknown; data?: unknown } | null;
      if (typeof chunk?.filename !== "string" || typeof chunk.data !== "string")
        throw new Error("transfer assets failed, invalid asset chunk");
      const bytes = Buffer.from(chunk.data, "base64");
      this.assetBytes += bytes.length;
      if (this.assetBytes > MAX_ASSET_BYTES) throw new Error("assets too large, at most 50MB");
      const parts = this.assets.get(chunk.filename) ?? [];
      parts.push(bytes);
      this.assets.set(chunk.filename, parts);
    } else if (type === "end") {
      await this.complete();
    }
  }

  private async complete(): Promise<void> {
    const tenantId = this.tenantId as string;
    if (Object.keys(this.providers).length === 0) throw new Error("no registration transferred, cannot initialize");
    // Upstream counts a plugin at its `end` message and turns away the one past the limit.
    if (this.counts.registered >= this.counts.limit) throw new Error(BUSY);
    this.countAs("registered");
    const parsed = pluginDeclarationObjectSchema.safeParse(
      withoutNulls({ ...this.manifest, ...this.providers, verified: false }),
    );
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new Error(`register failed, invalid manifest detected: ${issue?.path.join(".")}: ${issue?.message}`);
    }
    const files = new Map(
      [...this.assets].map(([name, parts]) => [`_assets/${name}`, new Uint8Array(Buffer.concat(parts))]),
    );
    const { declaration, assets } = extractAssets(parsed.data as PluginDeclaration, (path) => files.get(path));
    const prepared = await this.plugins.prepare(
      tenantId,
      declaration,
      assets.map((a) => ({ id: a.id, data: a.data })),
    );
    if (this.closed) return;
    const connection = new PluginConnection(prepared.uniqueIdentifier, (line) => {
      if (!this.socket.destroyed) this.socket.write(line);
    });
    this.runtime.attachRemote(prepared.uniqueIdentifier, connection);
    this.connection = connection;
    this.installation = await this.plugins.install(prepared);
  }

  private async disconnect(): Promise<void> {
    const { connection, installation } = this;
    if (!connection || !installation) return;
    this.runtime.detachRemote(installation.plugin_unique_identifier, connection);
    connection.closeAll("remote plugin disconnected");
    await this.plugins.uninstall(installation);
  }
}

/** The SDK sends unset optional fields as null; the declaration schema wants them absent. */
function withoutNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutNulls);
  if (typeof value !== "object" || value === null) return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([, v]) => v !== null)
      .map(([k, v]) => [k, withoutNulls(v)]),
  );
}
