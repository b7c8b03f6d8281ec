/**
 * Backwards invocation (plugin → Dify), for every runtime: the local runtime hands each `invoke`
 * message to the handler the dispatcher built for the session; Lambda plugins post them to
 * `/backwards-invocation/transaction`, which looks the session up and calls `handle` too.
 *
 * Rules as upstream applies them: a session serving a model call may not call back at all; each
 * type is gated by the manifest permission; storage is kept by the daemon; everything else goes
 * to Dify's inner API with tenant_id, user_id and type added from the session. Streamed answers
 * become `response`/`stream` events, single ones one `response`/`struct`; a failure is one
 * `error` event; `end` always closes the invocation.
 */
import { posix } from "node:path";
import { z } from "zod";
import { permissionsOf } from "../domain/declaration-facts.js";
import { identifierParts, type PluginUniqueIdentifier } from "../domain/identifier.js";
import { ruleFor } from "../domain/invoke-types.js";
import { metrics, secondsSince } from "../observability/metrics.js";
import type { DifyInnerApi } from "../ports/dify-inner-api.js";
import type {
  BackwardsInvocationEvent,
  BackwardsInvocationHandler,
  BackwardsInvocationRequest,
} from "../ports/plugin-runtime.js";
import type { PackageRecords } from "../stores/package-records.js";
import { type PluginStorage, StorageFullError } from "../stores/plugin-storage.js";
import type { BackwardsFactory } from "./dispatcher.js";

/** Who is calling back: the session as the daemon started it. */
export interface CallingSession {
  sessionId: string;
  tenantId: string;
  userId: string;
  uniqueIdentifier: PluginUniqueIdentifier;
  /** Access type of the session (tool, model, endpoint, ...). */
  accessType: string;
}

export interface BackwardsInvocationsOptions {
  /** Undefined when DIFY_INNER_API_URL is not set: storage still works, the rest fails clearly. */
  inner: DifyInnerApi | undefined;
  storage: PluginStorage;
  packages: PackageRecords;
  /** Cap for plugins whose manifest gives no storage size (upstream PERSISTENCE_STORAGE_MAX_SIZE). */
  defaultStorageBytes?: number;
}

const storageRequest = z.object({
  opt: z.enum(["get", "set", "del", "exist"]),
  key: z.string().min(1),
  value: z.string().optional().default(""),
});

const MAX_KEY_LENGTH = 256;
const DEFAULT_STORAGE_BYTES = 100 * 1024 * 1024;

/** An invocation that failed with a message meant for the plugin. */
class Refusal extends Error {}

export class BackwardsInvocations {
  constructor(private readonly options: BackwardsInvocationsOptions) {}

  /** The dispatcher's per-session handler factory. */
  readonly factory: BackwardsFactory = (input, sessionId): BackwardsInvocationHandler => {
    const session: CallingSession = {
      sessionId,
      tenantId: input.tenantId,
      userId: input.userId,
      uniqueIdentifier: input.uniqueIdentifier,
      accessType: input.action.type,
    };
    return (request) => this.handle(session, request);
  };

  async *handle(
    session: CallingSession,
    request: BackwardsInvocationRequest,
    signal?: AbortSignal,
  ): AsyncGenerator<BackwardsInvocationEvent> {
    const id = request.backwards_request_id;
    const started = performance.now();
    let status: "success" | "error" = "success";
    try {
      for await (const [message, data] of this.answer(session, request, signal)) {
        yield { backwards_request_id: id, event: "response", message, data };
      }
    } catch (err) {
      status = "error";
      yield {
        backwards_request_id: id,
        event: "error",
        message: err instanceof Error ? err.message : String(err),
        data: null,
      };
    } finally {
      metrics.backwardsInvocation({
        type: ruleFor(request.type) ? request.type : "unknown",
        status,
        seconds: secondsSince(started),
      });
    }
    yield { backwards_request_id: id, event: "end", message: "", data: null };
  }

  private async *answer(
    session: CallingSession,
    request: BackwardsInvocationRequest,
    signal?: AbortSignal,
  ): AsyncGenerator<["stream" | "struct", unknown]> {
    if (session.accessType === "model") throw new Refusal(`you can not invoke dify from ${session.accessType}`);
    const rule = ruleFor(request.type);
    if (!rule) throw new Refusal(`unsupported invoke type: ${request.type}`);
    const record = await this.options.packages.get(session.uniqueIdentifier);
    if (!record) throw new Refusal(`plugin ${session.uniqueIdentifier} is not known to this daemon`);
    const permissions = permissionsOf(record.declaration);
    if (!rule.allowed(permissions)) throw new Refusal(rule.denied);

    if (request.type === "storage") {
      const cap =
        permissions.storage.size > 0
          ? permissions.storage.size
          : (this.options.defaultStorageBytes ?? DEFAULT_STORAGE_BYTES);
      yield ["struct", await this.storage(session, request.request, cap)];
      return;
    }

    const inner = this.options.inner;
    if (!inner || !rule.path)
      throw new Refusal(`${rule.failure}: the Dify inner API is not configured on this daemon (DIFY_INNER_API_URL)`);
    const fields = rule.normalize ? rule.normalize(request.request) : request.request;
    const payload = { ...fields, tenant_id: session.tenantId, user_id: session.userId, type: request.type };
    try {
      if (rule.streamed) {
        for await (const chunk of inner.stream(rule.path, payload, signal)) yield ["stream", chunk];
      } else {
        const answer = await inner.call(rule.path, payload, signal);
        yield ["struct", rule.nested ? nestedData(answer) : answer];
      }
    } catch (err) {
      throw new Refusal(`${rule.failure}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /** Upstream's storage answers: `{data: hex}`, `{data: "ok"}`, `{data: "ok", deleted_num}`, `{data: bool, exist_num}`. */
  private async storage(
    session: CallingSession,
    raw: Record<string, unknown>,
    capBytes: number,
  ): Promise<Record<string, unknown>> {
    const parsed = storageRequest.safeParse(raw);
    if (!parsed.success)
      throw new Refusal(
        `unmarshal backwards invoke request failed: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`,
      );
    const { opt, key, value } = parsed.data;
    const keyProblem = checkKey(key);
    const store = this.options.storage;
    const tenant = session.tenantId;
    const plugin = identifierParts(session.uniqueIdentifier).pluginId;
    switch (opt) {
      case "get": {
        const bytes = keyProblem ? undefined : await store.get(tenant, plugin, key);
        if (!bytes) throw new Refusal("load data failed, please check if the key is correct or you have not set it");
        return { data: bytes.toString("hex") };
      }
      case "set": {
        if (!/^(?:[0-9a-fA-F]{2})*$/.test(value))
          throw new Refusal("decode data failed: encoding/hex: invalid byte or odd length");
        if (keyProblem) throw new Refusal(`save data failed: ${keyProblem}`);
        try {
          await store.set(tenant, plugin, key, Buffer.from(value, "hex"), capBytes);
        } catch (err) {
          if (err instanceof StorageFullError) throw new Refusal(`save data failed: ${err.message}`);
          throw err;
        }
        return { data: "ok" };
      }
      case "del": {
        if (keyProblem) throw new Refusal(`delete data failed: ${keyProblem}`);
        if (!(await store.delete(tenant, plugin, key))) throw new Refusal("delete data failed: key does not exist");
        return { data: "ok", deleted_num: 1 };
      }
      case "exist": {
        if (keyProblem) throw new Refusal(`exist data failed: ${keyProblem}`);
        const exists = await store.exists(tenant, plugin, key);
        return { data: exists, exist_num: exists ? 1 : 0 };
      }
    }
  }
}

function nestedData(answer: unknown): unknown {
  const data = (answer as { data?: unknown } | null)?.data;
  if (data === undefined || data === null) throw new Error("data is nil");
  return data;
}

/** Upstream's key rules (persistence.go): no path traversal after cleaning, at most 256 characters. */
function checkKey(key: string): string | undefined {
  const cleaned = posix.normalize(key);
  if (cleaned.includes("..") || cleaned.includes("//") || cleaned.includes("\\"))
    return "invalid key: path traversal attempt detected";
  if (key.length > MAX_KEY_LENGTH) return "key length must be less than 256 characters";
  return undefined;
}
