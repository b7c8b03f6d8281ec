/**
 * What the upstream Go daemon answers, request by request, written down from its source at
 * langgenius/dify-plugin-daemon@bdb5642a19009c944b78eca12f3d176801a4a8be: HTTP status, envelope
 * code, error type, the error text where Dify or a user reads it, and the shape of the data.
 * Each case names the upstream file and function its answer comes from. The wire-parity test
 * sends every request to the local daemon over HTTP and compares.
 *
 * Conventions of the upstream server the table relies on:
 * - controllers/base.go BindRequest: a request that fails binding/validation is HTTP 400, -400
 *   PluginDaemonBadRequestError (the text is Go's validator message, so only the type is compared).
 * - services answer with HTTP 200 and the envelope, errors included (negative code).
 * - http_server.go NoRoute: `{"code":"not_found","message":"route not found"}`, HTTP 404, before
 *   any group middleware (so before the key, plugin or header checks of the dispatch groups).
 */
import { expect } from "vitest";

export const UPSTREAM_COMMIT = "bdb5642a19009c944b78eca12f3d176801a4a8be";

/** What the cases refer to; filled in by the test once the fixtures are uploaded and installed. */
export interface WireContext {
  tenant: string;
  /** A second tenant, which runs the newer version of the plugin. */
  otherTenant: string;
  /** polling-llm 0.0.1, installed for `tenant`. */
  installed: string;
  /** polling-llm 0.0.2, installed for `otherTenant`. */
  installedElsewhere: string;
  /** polling-llm 0.0.3, uploaded and never installed. */
  storedOnly: string;
  /** Valid identifier no package has. */
  unknown: string;
  /** The remapped icon asset id of polling-llm. */
  iconAsset: string;
  /** The package bytes of polling-llm 0.0.3, for uploads. */
  packageBytes: Uint8Array;
  version: string;
}

export interface WireRequest {
  method: "GET" | "POST";
  path: string;
  headers?: Record<string, string>;
  json?: unknown;
  form?: FormData;
  /** Raw body with its content type. */
  body?: { contentType: string; text: string };
  /** Leave out the X-Api-Key header. */
  noKey?: boolean;
}

export type AnswerKind =
  /** `{code, message, data}` as JSON. */
  | "envelope"
  /** JSON without an envelope (health, NoRoute). */
  | "json"
  /** `data: <envelope>\n\n` server-sent events. */
  | "sse"
  /** Raw bytes (assets). */
  | "bytes";

export interface UpstreamAnswer {
  status: number;
  kind: AnswerKind;
  /** Envelope code (every envelope, and every SSE chunk but an error's last). */
  code?: number;
  errorType?: string;
  /** The error's text inside the envelope message, where it is upstream's own wording. */
  message?: string | RegExp;
  /** The envelope's `data` (or the raw JSON, or the SSE chunks' data), compared with toEqual; asymmetric matchers welcome. */
  data?: unknown;
  /** Raw bytes as text: a string to equal ("" for an empty body) or an asymmetric matcher. */
  text?: unknown;
}

export interface WireCase {
  name: string;
  /** Upstream file and function the answer is read from. */
  source: string;
  request: (ctx: WireContext) => WireRequest;
  upstream: (ctx: WireContext) => UpstreamAnswer;
}

const M = (ctx: WireContext) => `/plugin/${ctx.tenant}/management`;
const q = encodeURIComponent;

const badBinding: UpstreamAnswer = {
  status: 400,
  kind: "envelope",
  code: -400,
  errorType: "PluginDaemonBadRequestError",
};
const routeNotFound: UpstreamAnswer = {
  status: 404,
  kind: "json",
  data: { code: "not_found", message: "route not found" },
};
const ok = (data: unknown): UpstreamAnswer => ({ status: 200, kind: "envelope", code: 0, data });
const serviceError = (code: number, errorType: string, message?: string | RegExp): UpstreamAnswer => ({
  status: 200,
  kind: "envelope",
  code,
  errorType,
  message,
});

const multipart = (field: string, bytes: Uint8Array | undefined): FormData => {
  const form = new FormData();
  if (bytes) form.set(field, new Blob([bytes]), "upload.bin");
  form.set("verify_signature", "false");
  return form;
};

const dispatchHeaders = { "x-plugin-id": "fixtures/polling-llm" };
const llm = { provider: "pollingllm", model_type: "llm", credentials: { api_key: "k" } };
const startData = (model: string, text: string) => ({
  ...llm,
  model,
  prompt_messages: [{ role: "user", content: text }],
  model_parameters: { temperature: 0.2 },
  stop: [],
  tools: [],
  stream: false,
});
const checkData = (pluginState: Record<string, unknown>) => ({ ...llm, model: "slow-chat", plugin_state: pluginState });

/** A plugin's error as upstream carries it: PluginInvokeError whose text is the plugin's own error as JSON. */
export const pluginErrorInside = (errorType: string, message: RegExp) =>
  expect.stringMatching(
    new RegExp(
      `"error_type":"${errorType}".*"message":"${message.source}|"message":"${message.source}.*"error_type":"${errorType}"`,
    ),
  );

export const wireCases: WireCase[] = [
  // ---------------------------------------------------------------------------------- health, auth, routes
  {
    name: "health check: raw JSON in upstream's fields",
    source: "internal/server/controllers/health_check.go HealthCheck",
    request: () => ({ method: "GET", path: "/health/check", noKey: true }),
    upstream: (ctx) => ({
      status: 200,
      kind: "json",
      data: {
        status: "ok",
        pool_status: { free: expect.any(Number), busy: expect.any(Number), total: expect.any(Number) },
        version: ctx.version,
        build_time: expect.any(String),
        platform: "local",
        // the health request itself is one of them
        active_requests: expect.toSatisfy((n: number) => n >= 1),
        active_dispatch_requests: expect.any(Number),
        // ours only: how long this daemon process has run
        uptime_seconds: expect.any(Number),
      },
    }),
  },
  {
    name: "a management call without the key",
    source: "internal/server/middleware.go CheckingKey",
    request: (ctx) => ({ method: "GET", path: `${M(ctx)}/list?page=1&page_size=10`, noKey: true }),
    upstream: () => ({
      status: 401,
      kind: "envelope",
      code: -401,
      errorType: "PluginDaemonUnauthorizedError",
      message: "unauthorized",
    }),
  },
  {
    name: "an unknown route",
    source: "internal/server/http_server.go NoRoute",
    request: () => ({ method: "GET", path: "/no/such/route" }),
    upstream: () => routeNotFound,
  },

  // ---------------------------------------------------------------------------------- uploads
  {
    name: "upload/package without the dify_pkg field",
    source: "internal/server/controllers/plugins.go UploadPlugin (c.FormFile error)",
    request: (ctx) => ({
      method: "POST",
      path: `${M(ctx)}/install/upload/package`,
      form: multipart("other", new Uint8Array([1])),
    }),
    upstream: () => serviceError(-400, "PluginDaemonBadRequestError", "http: no such file"),
  },
  {
    name: "upload/package with a body that is not multipart",
    source: "internal/server/controllers/plugins.go UploadPlugin (c.FormFile error)",
    request: (ctx) => ({ method: "POST", path: `${M(ctx)}/install/upload/package`, json: { dify_pkg: "x" } }),
    upstream: () => serviceError(-400, "PluginDaemonBadRequestError"),
  },
  {
    name: "upload/bundle without the dify_bundle field",
    source: "internal/server/controllers/plugins.go UploadBundle (c.FormFile error)",
    request: (ctx) => ({
      method: "POST",
      path: `${M(ctx)}/install/upload/bundle`,
      form: multipart("dify_pkg", new Uint8Array([1])),
    }),
    upstream: () => serviceError(-400, "PluginDaemonBadRequestError", "http: no such file"),
  },
  {
    name: "upload/package of bytes that are not a package",
    source: "internal/service/plugin_decoder.go UploadPluginPkg (decoder error)",
    request: (ctx) => ({
      method: "POST",
      path: `${M(ctx)}/install/upload/package`,
      form: multipart("dify_pkg", new TextEncoder().encode("not a zip")),
    }),
    upstream: () => serviceError(-400, "PluginDaemonBadRequestError"),
  },
  {
    name: "upload/package of a package",
    source: "internal/service/plugin_decoder.go UploadPluginPkg",
    request: (ctx) => ({
      method: "POST",
      path: `${M(ctx)}/install/upload/package`,
      form: multipart("dify_pkg", ctx.packageBytes),
    }),
    upstream: (ctx) =>
      ok({
        unique_identifier: ctx.storedOnly,
        // the stored declaration: icons remapped to asset ids
        manifest: expect.objectContaining({
          name: "polling-llm",
          icon: expect.stringMatching(/^[a-f0-9]{64}\.svg$/),
          verified: false,
        }),
        verification: null,
      }),
  },

  // ---------------------------------------------------------------------------------- install, upgrade
  {
    name: "install/identifiers with an identifier that is not one",
    source: "internal/server/controllers/plugins.go InstallPluginFromIdentifiers (validate plugin_unique_identifier)",
    request: (ctx) => ({
      method: "POST",
      path: `${M(ctx)}/install/identifiers`,
      json: { plugin_unique_identifiers: ["nope"], source: "package", metas: [{}] },
    }),
    upstream: () => badBinding,
  },
  {
    name: "install/identifiers with fewer metas than identifiers",
    source: "internal/server/controllers/plugins.go InstallPluginFromIdentifiers",
    request: (ctx) => ({
      method: "POST",
      path: `${M(ctx)}/install/identifiers`,
      json: { plugin_unique_identifiers: [ctx.installed, ctx.storedOnly], source: "package", metas: [{}] },
    }),
    upstream: () =>
      serviceError(
        -400,
        "PluginDaemonBadRequestError",
        "the number of metas must be equal to the number of plugin unique identifiers",
      ),
  },
  {
    name: "install/identifiers of a plugin the tenant has",
    source: "internal/service/install_plugin.go InstallMultiplePluginsToTenant (allInstalled)",
    request: (ctx) => ({
      method: "POST",
      path: `${M(ctx)}/install/identifiers`,
      json: { plugin_unique_identifiers: [ctx.installed], source: "package", metas: [{}] },
    }),
    upstream: () => ok({ all_installed: true, task_id: "" }),
  },
  {
    name: "install/upgrade to the same identifier",
    source: "internal/server/controllers/plugins.go UpgradePlugin",
    request: (ctx) => ({
      method: "POST",
      path: `${M(ctx)}/install/upgrade`,
      json: {
        original_plugin_unique_identifier: ctx.installed,
        new_plugin_unique_identifier: ctx.installed,
        source: "package",
        meta: {},
      },
    }),
    upstream: () =>
      serviceError(-400, "PluginDaemonBadRequestError", "original and new plugin unique identifier are the same"),
  },
  {
    name: "install/upgrade to another plugin",
    source: "internal/server/controllers/plugins.go UpgradePlugin",
    request: (ctx) => ({
      method: "POST",
      path: `${M(ctx)}/install/upgrade`,
      json: {
        original_plugin_unique_identifier: ctx.installed,
        new_plugin_unique_identifier: ctx.unknown,
        source: "package",
        meta: {},
      },
    }),
    upstream: () => serviceError(-400, "PluginDaemonBadRequestError", "original and new plugin id are different"),
  },
  {
    name: "install/upgrade of a version the tenant does not have",
    source: "internal/service/install_plugin.go UpgradePlugin (installation lookup)",
    request: (ctx) => ({
      method: "POST",
      path: `${M(ctx)}/install/upgrade`,
      json: {
        original_plugin_unique_identifier: ctx.storedOnly,
        new_plugin_unique_identifier: ctx.installedElsewhere,
        source: "package",
        meta: {},
      },
    }),
    upstream: () => serviceError(-404, "PluginDaemonNotFoundError", "plugin installation not found for this tenant"),
  },
  {
    name: "install/upgrade with a missing field",
    source: "internal/server/controllers/plugins.go UpgradePlugin (validate required)",
    request: (ctx) => ({
      method: "POST",
      path: `${M(ctx)}/install/upgrade`,
      json: { original_plugin_unique_identifier: ctx.installed, source: "package" },
    }),
    upstream: () => badBinding,
  },

  // ---------------------------------------------------------------------------------- install tasks
  {
    name: "install/tasks without paging",
    source: "internal/server/controllers/plugins.go FetchPluginInstallationTasks (validate page)",
    request: (ctx) => ({ method: "GET", path: `${M(ctx)}/install/tasks` }),
    upstream: () => badBinding,
  },
  {
    name: "install/tasks",
    source: "internal/service/install_task_service.go FetchPluginInstallationTasks",
    request: (ctx) => ({
      method: "GET",
      path: `/plugin/${ctx.otherTenant}/management/install/tasks?page=1&page_size=10`,
    }),
    upstream: () => ok(expect.any(Array)),
  },
  {
    name: "install/tasks/:id of a task that does not exist",
    source: "internal/service/install_task_service.go FetchPluginInstallationTask",
    request: (ctx) => ({ method: "GET", path: `${M(ctx)}/install/tasks/0190f0f0-0000-7000-8000-000000000000` }),
    upstream: () => serviceError(-500, "PluginDaemonInternalServerError", "record not found"),
  },
  {
    name: "install/tasks/:id/delete/*identifier with an identifier that is not one",
    source: "internal/server/controllers/plugins.go DeletePluginInstallationItemFromTask",
    request: (ctx) => ({
      method: "POST",
      path: `${M(ctx)}/install/tasks/0190f0f0-0000-7000-8000-000000000000/delete/not-an-identifier`,
    }),
    upstream: () =>
      serviceError(-400, "PluginDaemonBadRequestError", "plugin_unique_identifier is not valid: not-an-identifier"),
  },
  {
    name: "install/tasks/:id/delete/*identifier of a task already gone",
    source: "internal/service/install_task_service.go DeletePluginInstallationItemFromTask",
    request: (ctx) => ({
      method: "POST",
      path: `${M(ctx)}/install/tasks/0190f0f0-0000-7000-8000-000000000000/delete/${ctx.installed}`,
    }),
    upstream: () => ok(true),
  },
  {
    name: "install/tasks/:id/delete",
    source: "internal/service/install_task_service.go DeletePluginInstallationTask",
    request: (ctx) => ({ method: "POST", path: `${M(ctx)}/install/tasks/0190f0f0-0000-7000-8000-000000000000/delete` }),
    upstream: () => ok(true),
  },
  {
    name: "install/tasks/delete_all",
    source: "internal/service/install_task_service.go DeleteAllPluginInstallationTasks",
    request: (ctx) => ({ method: "POST", path: `${M(ctx)}/install/tasks/delete_all` }),
    upstream: () => ok(true),
  },

  // ---------------------------------------------------------------------------------- decode, fetch
  {
    name: "decode/from_identifier: the manifest as the package declares it",
    source: "internal/service/decode_service.go DecodePluginFromIdentifier (zipDecoder.Manifest)",
    request: (ctx) => ({
      method: "GET",
      path: `${M(ctx)}/decode/from_identifier?plugin_unique_identifier=${q(ctx.storedOnly)}`,
    }),
    upstream: (ctx) =>
      ok({
        unique_identifier: ctx.storedOnly,
        manifest: expect.objectContaining({ name: "polling-llm", icon: "icon.svg", verified: false }),
        verification: null,
      }),
  },
  {
    name: "decode/from_identifier of a package nobody uploaded",
    source: "internal/service/decode_service.go DecodePluginFromIdentifier (GetPackage error)",
    request: (ctx) => ({
      method: "GET",
      path: `${M(ctx)}/decode/from_identifier?plugin_unique_identifier=${q(ctx.unknown)}`,
    }),
    upstream: () => serviceError(-400, "PluginDaemonBadRequestError"),
  },
  {
    name: "decode/from_identifier with an identifier that is not one",
    source: "internal/server/controllers/plugins.go DecodePluginFromIdentifier (validate)",
    request: (ctx) => ({ method: "GET", path: `${M(ctx)}/decode/from_identifier?plugin_unique_identifier=nope` }),
    upstream: () => badBinding,
  },
  {
    name: "v2/invoke/extract: the manifest as the package declares it",
    source: "internal/service/extract.go ExtractPluginSchema",
    request: (ctx) => ({
      method: "GET",
      path: "/v2/invoke/extract",
      headers: { "x-plugin-unique-identifier": ctx.installed },
    }),
    upstream: (ctx) =>
      ok({
        unique_identifier: ctx.installed,
        manifest: expect.objectContaining({
          name: "polling-llm",
          icon: "icon.svg",
          model: expect.objectContaining({ provider: "pollingllm" }),
        }),
        verification: null,
      }),
  },
  {
    name: "v2/invoke/extract without X-Plugin-Unique-Identifier",
    source: "internal/server/middleware.go FetchPluginDirect",
    request: () => ({ method: "GET", path: "/v2/invoke/extract" }),
    upstream: () => ({
      status: 400,
      kind: "envelope",
      code: -400,
      errorType: "PluginDaemonBadRequestError",
      message: "X-Plugin-Unique-Identifier header is required",
    }),
  },
  {
    name: "v2/invoke/extract with an identifier that is not one",
    source: "internal/server/middleware.go FetchPluginDirect",
    request: () => ({ method: "GET", path: "/v2/invoke/extract", headers: { "x-plugin-unique-identifier": "nope" } }),
    upstream: () => ({ status: 400, kind: "envelope", code: -400, errorType: "PluginUniqueIdentifierError" }),
  },
  {
    name: "fetch/manifest: the stored declaration",
    source: "internal/service/plugin_decoder.go FetchPluginManifest",
    request: (ctx) => ({
      method: "GET",
      path: `${M(ctx)}/fetch/manifest?plugin_unique_identifier=${q(ctx.storedOnly)}`,
    }),
    upstream: (ctx) => ok(expect.objectContaining({ name: "polling-llm", icon: ctx.iconAsset })),
  },
  {
    name: "fetch/manifest of a package nobody uploaded",
    source: "internal/service/plugin_decoder.go FetchPluginManifest",
    request: (ctx) => ({ method: "GET", path: `${M(ctx)}/fetch/manifest?plugin_unique_identifier=${q(ctx.unknown)}` }),
    upstream: () => serviceError(-400, "PluginDaemonBadRequestError", "plugin not found"),
  },
  {
    name: "fetch/identifier of a plugin installed for a tenant",
    source: "internal/service/decode_service.go FetchPluginFromIdentifier (plugins table)",
    request: (ctx) => ({
      method: "GET",
      path: `${M(ctx)}/fetch/identifier?plugin_unique_identifier=${q(ctx.installed)}`,
    }),
    upstream: () => ok(true),
  },
  {
    name: "fetch/identifier of a package stored but installed nowhere",
    source: "internal/service/decode_service.go FetchPluginFromIdentifier (plugins table)",
    request: (ctx) => ({
      method: "GET",
      path: `${M(ctx)}/fetch/identifier?plugin_unique_identifier=${q(ctx.storedOnly)}`,
    }),
    upstream: () => ok(false),
  },
  {
    name: "fetch/identifier with an identifier that is not one",
    source: "internal/server/controllers/plugins.go FetchPluginFromIdentifier (validate)",
    request: (ctx) => ({ method: "GET", path: `${M(ctx)}/fetch/identifier?plugin_unique_identifier=nope` }),
    upstream: () => badBinding,
  },
  {
    name: "fetch/readme",
    source: "internal/service/plugin_readme.go FetchPluginReadme",
    request: (ctx) => ({
      method: "GET",
      path: `${M(ctx)}/fetch/readme?plugin_unique_identifier=${q(ctx.installed)}&language=ja_JP`,
    }),
    upstream: () =>
      ok({ content: expect.stringContaining("![How a polling call goes](./_assets/flow.svg)"), language: "en_US" }),
  },

  // ---------------------------------------------------------------------------------- assets (raw bytes)
  {
    name: "extract-asset of a README image, named as Dify's web UI asks for it",
    source:
      "internal/server/controllers/plugins.go ExtractPluginAsset, internal/core/plugin_manager/manager.go ExtractPluginAsset",
    request: (ctx) => ({
      method: "GET",
      path: `/plugin/${ctx.tenant}/extract-asset/?plugin_unique_identifier=${q(ctx.installed)}&file_path=flow.svg`,
    }),
    upstream: () => ({ status: 200, kind: "bytes", text: expect.stringContaining("start, check, done") }),
  },
  {
    name: "extract-asset of a name the package's assets do not have",
    source: "internal/core/plugin_manager/manager.go ExtractPluginAsset (assets[path] is nil)",
    request: (ctx) => ({
      method: "GET",
      path: `/plugin/${ctx.tenant}/extract-asset/?plugin_unique_identifier=${q(ctx.installed)}&file_path=missing.png`,
    }),
    upstream: () => ({ status: 200, kind: "bytes", text: "" }),
  },
  {
    name: "extract-asset of a file outside _assets",
    source: "internal/core/plugin_manager/manager.go ExtractPluginAsset (only _assets/ is searched)",
    request: (ctx) => ({
      method: "GET",
      path: `/plugin/${ctx.tenant}/extract-asset/?plugin_unique_identifier=${q(ctx.installed)}&file_path=README.md`,
    }),
    upstream: () => ({ status: 200, kind: "bytes", text: "" }),
  },
  {
    name: "extract-asset of a package nobody uploaded",
    source: "internal/server/controllers/plugins.go ExtractPluginAsset (GetPackage error)",
    request: (ctx) => ({
      method: "GET",
      path: `/plugin/${ctx.tenant}/extract-asset/?plugin_unique_identifier=${q(ctx.unknown)}&file_path=flow.svg`,
    }),
    upstream: () => ({ status: 500, kind: "envelope", code: -500, errorType: "PluginDaemonInternalServerError" }),
  },
  {
    name: "asset/:id of the remapped icon",
    source: "internal/server/controllers/plugins.go GetAsset",
    request: (ctx) => ({ method: "GET", path: `/plugin/${ctx.tenant}/asset/${ctx.iconAsset}` }),
    upstream: () => ({ status: 200, kind: "bytes", text: expect.stringContaining("<svg") }),
  },
  {
    name: "asset/:id that does not exist",
    source: "internal/server/controllers/plugins.go GetAsset (no such file: empty 200)",
    request: (ctx) => ({ method: "GET", path: `/plugin/${ctx.tenant}/asset/${"0".repeat(64)}.png` }),
    upstream: () => ({ status: 200, kind: "bytes", text: "" }),
  },

  // ---------------------------------------------------------------------------------- listings
  {
    name: "list without paging",
    source: "internal/server/controllers/plugins.go ListPlugins (validate page)",
    request: (ctx) => ({ method: "GET", path: `${M(ctx)}/list` }),
    upstream: () => badBinding,
  },
  {
    name: "list",
    source: "internal/service/manage_plugin.go ListPlugins",
    request: (ctx) => ({ method: "GET", path: `${M(ctx)}/list?page=1&page_size=10` }),
    upstream: (ctx) =>
      ok({
        list: [
          expect.objectContaining({
            plugin_id: "fixtures/polling-llm",
            plugin_unique_identifier: ctx.installed,
            runtime_type: "local",
            version: "0.0.1",
          }),
        ],
        total: 1,
      }),
  },
  {
    name: "installation/ids without a category",
    source: "internal/server/controllers/plugins.go ListInstalledPluginIDs (category validate:required)",
    request: (ctx) => ({ method: "GET", path: `${M(ctx)}/installation/ids` }),
    upstream: () => badBinding,
  },
  {
    name: "installation/ids of a category that does not exist",
    source: "internal/service/manage_plugin.go ListInstalledPluginIDs (default case)",
    request: (ctx) => ({ method: "GET", path: `${M(ctx)}/installation/ids?category=widgets` }),
    upstream: () => serviceError(-400, "PluginDaemonBadRequestError", "invalid plugin category"),
  },
  {
    name: "installation/ids of the model category",
    source: "internal/service/manage_plugin.go ListInstalledPluginIDs (ai_model_installations)",
    request: (ctx) => ({ method: "GET", path: `${M(ctx)}/installation/ids?category=model` }),
    upstream: () => ok({ plugin_ids: ["fixtures/polling-llm"] }),
  },
  {
    name: "installation/ids of the tool category",
    source: "internal/service/manage_plugin.go ListInstalledPluginIDs (tool_installations)",
    request: (ctx) => ({ method: "GET", path: `${M(ctx)}/installation/ids?category=tool` }),
    upstream: () => ok({ plugin_ids: [] }),
  },
  {
    name: ":category/list of a category that does not exist",
    source: "internal/service/manage_plugin.go ListPluginsByCategory (isValidPluginCategory)",
    request: (ctx) => ({ method: "GET", path: `${M(ctx)}/widgets/list?page=1&page_size=10` }),
    upstream: () => serviceError(-400, "PluginDaemonBadRequestError", "invalid plugin category"),
  },
  {
    name: ":category/list without paging",
    source: "internal/server/controllers/plugins.go listPluginsByCategoryRequest (validate page)",
    request: (ctx) => ({ method: "GET", path: `${M(ctx)}/widgets/list` }),
    upstream: () => badBinding,
  },
  {
    name: ":category/list in a language it does not know",
    source: "internal/server/controllers/plugins.go listPluginsByCategoryRequest (language oneof)",
    request: (ctx) => ({ method: "GET", path: `${M(ctx)}/model/list?page=1&page_size=10&language=de_DE` }),
    upstream: () => badBinding,
  },
  {
    name: ":category/list with a tag that does not exist",
    source: "internal/server/controllers/plugins.go listPluginsByCategoryRequest (tags dive,plugin_tag)",
    request: (ctx) => ({ method: "GET", path: `${M(ctx)}/model/list?page=1&page_size=10&tags=no-such-tag` }),
    upstream: () => badBinding,
  },
  {
    name: ":category/list searching the label in the requested language",
    source: "internal/service/manage_plugin.go pluginMatchesCategoryListFilters, localizedPluginListText",
    request: (ctx) => ({
      method: "GET",
      path: `${M(ctx)}/model/list?page=1&page_size=10&language=zh_Hans&query=${q("轮询")}&tags=utilities`,
    }),
    upstream: () =>
      ok({
        list: [expect.objectContaining({ plugin_id: "fixtures/polling-llm", name: "polling-llm" })],
        has_more: false,
      }),
  },
  {
    name: ":category/list searching another language's label finds nothing",
    source: "internal/service/manage_plugin.go localizedPluginListText (only the requested language, else en_US)",
    request: (ctx) => ({
      method: "GET",
      path: `${M(ctx)}/model/list?page=1&page_size=10&language=en_US&query=${q("轮询")}`,
    }),
    upstream: () => ok({ list: [], has_more: false }),
  },
  {
    name: ":category/list falls back to en_US where the language has no text",
    source: "internal/service/manage_plugin.go localizedPluginListText (en_US fallback)",
    request: (ctx) => ({
      method: "GET",
      path: `${M(ctx)}/model/list?page=1&page_size=10&language=ja_JP&query=answers%20through`,
    }),
    upstream: () => ok({ list: [expect.objectContaining({ plugin_id: "fixtures/polling-llm" })], has_more: false }),
  },
  {
    name: "installation/fetch/batch",
    source: "internal/service/manage_plugin.go BatchFetchPluginInstallationByIDs",
    request: (ctx) => ({
      method: "POST",
      path: `${M(ctx)}/installation/fetch/batch`,
      json: { plugin_ids: ["fixtures/polling-llm", "fixtures/absent"] },
    }),
    upstream: (ctx) =>
      ok([
        expect.objectContaining({
          plugin_id: "fixtures/polling-llm",
          plugin_unique_identifier: ctx.installed,
          version: "0.0.1",
        }),
      ]),
  },
  {
    name: "installation/fetch/batch without plugin_ids",
    source: "internal/server/controllers/plugins.go BatchFetchPluginInstallationByIDs (validate required)",
    request: (ctx) => ({ method: "POST", path: `${M(ctx)}/installation/fetch/batch`, json: {} }),
    upstream: () => badBinding,
  },
  {
    name: "installation/missing",
    source: "internal/service/manage_plugin.go FetchMissingPluginInstallations",
    request: (ctx) => ({
      method: "POST",
      path: `${M(ctx)}/installation/missing`,
      json: { plugin_unique_identifiers: [ctx.installed, ctx.storedOnly, ctx.unknown] },
    }),
    upstream: (ctx) =>
      ok([
        { plugin_unique_identifier: ctx.storedOnly, current_identifier: ctx.installed },
        { plugin_unique_identifier: ctx.unknown, current_identifier: "" },
      ]),
  },
  {
    name: "models/bindings",
    source: "internal/service/manage_plugin.go ListModelPluginBindings",
    request: (ctx) => ({ method: "GET", path: `${M(ctx)}/models/bindings` }),
    upstream: (ctx) =>
      ok([
        expect.objectContaining({
          provider: "pollingllm",
          plugin_id: "fixtures/polling-llm",
          plugin_unique_identifier: ctx.installed,
          runtime_type: "local",
          version: "0.0.1",
          verified: false,
        }),
      ]),
  },
  {
    name: "models: the provider with upstream's parameter templates",
    source:
      "internal/service/manage_plugin.go ListModels; pkg/entities/plugin_entities/model_declaration.go PARAMETER_RULE_TEMPLATE",
    request: (ctx) => ({ method: "GET", path: `${M(ctx)}/models?page=1&page_size=256` }),
    upstream: () =>
      ok([
        expect.objectContaining({
          provider: "pollingllm",
          declaration: expect.objectContaining({
            models: expect.arrayContaining([
              expect.objectContaining({
                model: "slow-chat",
                parameter_rules: [
                  expect.objectContaining({
                    name: "temperature",
                    label: { en_US: "temperature" },
                    required: false,
                    help: {
                      en_US:
                        "Controls randomness. Lower temperature results in less random completions. As the temperature approaches zero, the model will become deterministic and repetitive. Higher temperature results in more random completions.",
                      zh_Hans:
                        "温度控制随机性。较低的温度会导致较少的随机完成。随着温度接近零，模型将变得确定性和重复性。较高的温度会导致更多的随机完成。",
                      ja_JP:
                        "温度はランダム性を制御します。温度が低いほどランダムな完成が少なくなります。温度がゼロに近づくと、モデルは決定論的で繰り返しになります。温度が高いほどランダムな完成が多くなります。",
                      pt_BR:
                        "A temperatura controla a aleatoriedade. Menores temperaturas resultam em menos conclusões aleatórias. À medida que a temperatura se aproxima de zero, o modelo se tornará determinístico e repetitivo. Temperaturas mais altas resultam em mais conclusões aleatórias.",
                    },
                  }),
                  expect.objectContaining({ name: "top_p", default: 1, min: 0, max: 1, precision: 2 }),
                  expect.objectContaining({
                    name: "max_tokens",
                    type: "int",
                    default: 64,
                    min: 1,
                    max: 2048,
                    precision: 0,
                    help: expect.objectContaining({
                      zh_Hans: "指定生成结果长度的上限。如果生成结果截断，可以调大该参数。",
                    }),
                  }),
                ],
              }),
            ]),
          }),
        }),
      ]),
  },
  {
    name: "model (singular): no such route upstream",
    source: "internal/server/http_server.go pluginManagementGroup (no GET /model)",
    request: (ctx) => ({ method: "GET", path: `${M(ctx)}/model?plugin_id=fixtures/polling-llm&provider=pollingllm` }),
    upstream: () => routeNotFound,
  },
  {
    name: "tools of a tenant without tool providers",
    source: "internal/service/manage_plugin.go ListTools",
    request: (ctx) => ({ method: "GET", path: `${M(ctx)}/tools?page=1&page_size=256` }),
    upstream: () => ok([]),
  },
  {
    name: "tool that is not installed",
    source: "internal/service/manage_plugin.go GetTool (ErrDatabaseNotFound)",
    request: (ctx) => ({ method: "GET", path: `${M(ctx)}/tool?plugin_id=fixtures/polling-llm&provider=echo` }),
    upstream: () => serviceError(-404, "PluginNotFoundError", "plugin not found"),
  },
  {
    name: "agent_strategy that is not installed",
    source: "internal/service/manage_plugin.go GetAgentStrategy (ErrDatabaseNotFound)",
    request: (ctx) => ({ method: "GET", path: `${M(ctx)}/agent_strategy?plugin_id=fixtures/polling-llm&provider=x` }),
    upstream: () => serviceError(-404, "PluginNotFoundError", "plugin not found"),
  },
  {
    name: "trigger that is not installed",
    source: "internal/service/trigger.go GetTrigger (ErrDatabaseNotFound)",
    request: (ctx) => ({ method: "GET", path: `${M(ctx)}/trigger?plugin_id=fixtures/polling-llm&provider=x` }),
    upstream: () => serviceError(-404, "PluginNotFoundError", "plugin not found"),
  },
  {
    name: "datasource that is not installed",
    source: "internal/service/manage_plugin.go GetDatasource (any database error is internal)",
    request: (ctx) => ({ method: "GET", path: `${M(ctx)}/datasource?plugin_id=fixtures/polling-llm&provider=x` }),
    upstream: () => serviceError(-500, "PluginDaemonInternalServerError", "record not found"),
  },
  {
    name: "tool without plugin_id",
    source: "internal/server/controllers/tool.go GetTool (validate required)",
    request: (ctx) => ({ method: "GET", path: `${M(ctx)}/tool?provider=echo` }),
    upstream: () => badBinding,
  },
  {
    name: "tools/check_existence",
    source: "internal/service/manage_plugin.go CheckToolExistence",
    request: (ctx) => ({
      method: "POST",
      path: `${M(ctx)}/tools/check_existence`,
      json: { provider_ids: [{ plugin_id: "fixtures/polling-llm", provider_name: "pollingllm" }] },
    }),
    upstream: () => ok([false]),
  },
  {
    name: "uninstall of an installation that does not exist",
    source: "internal/service/install_plugin.go UninstallPlugin (ErrDatabaseNotFound)",
    request: (ctx) => ({
      method: "POST",
      path: `${M(ctx)}/uninstall`,
      json: { plugin_installation_id: "0190f0f0-0000-7000-8000-000000000000" },
    }),
    upstream: () => ok(true),
  },
  {
    name: "uninstall without plugin_installation_id",
    source: "internal/server/controllers/plugins.go UninstallPlugin (validate required)",
    request: (ctx) => ({ method: "POST", path: `${M(ctx)}/uninstall`, json: {} }),
    upstream: () => badBinding,
  },

  // ---------------------------------------------------------------------------------- endpoints, debugging
  {
    name: "endpoint/enable of an endpoint that does not exist",
    source: "internal/service/endpoint.go EnableEndpoint, handleEndpointStateError",
    request: (ctx) => ({
      method: "POST",
      path: `/plugin/${ctx.tenant}/endpoint/enable`,
      json: { endpoint_id: "0190f0f0-0000-7000-8000-000000000000" },
    }),
    upstream: () => serviceError(-404, "PluginDaemonNotFoundError", "endpoint not found"),
  },
  {
    name: "endpoint/remove of an endpoint that does not exist",
    source: "internal/service/setup_endpoint.go RemoveEndpoint",
    request: (ctx) => ({
      method: "POST",
      path: `/plugin/${ctx.tenant}/endpoint/remove`,
      json: { endpoint_id: "0190f0f0-0000-7000-8000-000000000000" },
    }),
    upstream: () =>
      serviceError(-500, "PluginDaemonInternalServerError", /^failed to remove endpoint: .*record not found/),
  },
  {
    name: "endpoint/list with a page size over 100",
    source: "internal/server/controllers/endpoint.go ListEndpoints (page_size max=100)",
    request: (ctx) => ({ method: "GET", path: `/plugin/${ctx.tenant}/endpoint/list?page=1&page_size=101` }),
    upstream: () => badBinding,
  },
  {
    name: "endpoint/list/plugin without plugin_id",
    source: "internal/server/controllers/endpoint.go ListPluginEndpoints (validate required)",
    request: (ctx) => ({ method: "GET", path: `/plugin/${ctx.tenant}/endpoint/list/plugin?page=1&page_size=10` }),
    upstream: () => badBinding,
  },
  {
    name: "endpoint/list",
    source: "internal/service/endpoint.go ListEndpoints",
    request: (ctx) => ({ method: "GET", path: `/plugin/${ctx.tenant}/endpoint/list?page=1&page_size=10` }),
    upstream: () => ok([]),
  },
  {
    name: "debugging/key",
    source: "internal/service/debugging.go GetRemoteDebuggingKey",
    request: (ctx) => ({ method: "POST", path: `/plugin/${ctx.tenant}/debugging/key` }),
    upstream: () => ok({ key: expect.stringMatching(/^[0-9a-f-]{36}$/) }),
  },

  // ---------------------------------------------------------------------------------- dispatch (streams)
  {
    name: "dispatch without X-Plugin-ID",
    source: "internal/server/middleware.go FetchPluginInstallation",
    request: (ctx) => ({
      method: "POST",
      path: `/plugin/${ctx.tenant}/dispatch/llm/invoke`,
      json: { data: startData("slow-chat", "hi") },
    }),
    upstream: () => ({
      status: 400,
      kind: "envelope",
      code: -400,
      errorType: "PluginDaemonBadRequestError",
      message: "plugin_id is required",
    }),
  },
  {
    name: "dispatch to a plugin the tenant has not installed",
    source: "internal/server/middleware.go FetchPluginInstallation (ErrDatabaseNotFound)",
    request: (ctx) => ({
      method: "POST",
      path: `/plugin/${ctx.tenant}/dispatch/llm/invoke`,
      headers: { "x-plugin-id": "fixtures/absent" },
      json: { data: {} },
    }),
    upstream: () => ({
      status: 404,
      kind: "envelope",
      code: -404,
      errorType: "PluginNotFoundError",
      message: "plugin not found",
    }),
  },
  {
    name: "dispatch of an action that does not exist, without any header",
    source: "internal/server/http_server.go NoRoute (before the dispatch group's middleware)",
    request: (ctx) => ({ method: "POST", path: `/plugin/${ctx.tenant}/dispatch/no/such/action`, json: {} }),
    upstream: () => routeNotFound,
  },
  {
    name: "dispatch/llm/invoke streams envelopes",
    source: "internal/service/base_sse.go baseSSEService",
    request: (ctx) => ({
      method: "POST",
      path: `/plugin/${ctx.tenant}/dispatch/llm/invoke`,
      headers: dispatchHeaders,
      json: { user_id: "u1", data: { ...startData("slow-chat", "streamed words"), stream: true } },
    }),
    upstream: () => ({
      status: 200,
      kind: "sse",
      code: 0,
      data: [
        expect.objectContaining({
          delta: expect.objectContaining({ message: expect.objectContaining({ content: "streamed words" }) }),
        }),
      ],
    }),
  },

  {
    name: "dispatch/model/validate_provider_credentials streams its result",
    source: "internal/service/model.gen.go ValidateProviderCredentials (baseSSEWithSession)",
    request: (ctx) => ({
      method: "POST",
      path: `/plugin/${ctx.tenant}/dispatch/model/validate_provider_credentials`,
      headers: dispatchHeaders,
      json: { user_id: "u1", data: { provider: "pollingllm", credentials: { api_key: "k" } } },
    }),
    upstream: () => ({ status: 200, kind: "sse", code: 0, data: [expect.objectContaining({ result: true })] }),
  },
  {
    name: "dispatch/model/schema streams the model's schema",
    source: "internal/service/model.gen.go GetAIModelSchema (baseSSEWithSession)",
    request: (ctx) => ({
      method: "POST",
      path: `/plugin/${ctx.tenant}/dispatch/model/schema`,
      headers: dispatchHeaders,
      json: { user_id: "u1", data: { ...llm, model: "slow-chat" } },
    }),
    upstream: () => ({
      status: 200,
      kind: "sse",
      code: 0,
      data: [{ model_schema: expect.objectContaining({ model: "slow-chat", features: ["polling"] }) }],
    }),
  },

  // ---------------------------------------------------------------------------------- model polling (one JSON envelope)
  {
    name: "model/polling/start answers one envelope with the plugin's state",
    source: "internal/service/model_polling.go StartPolling; pkg/entities/model_entities/polling.go ModelPollingResult",
    request: (ctx) => ({
      method: "POST",
      path: `/plugin/${ctx.tenant}/dispatch/model/polling/start`,
      headers: dispatchHeaders,
      json: { user_id: "u1", data: startData("slow-chat", "polled answer") },
    }),
    upstream: () =>
      ok({
        status: "running",
        plugin_state: { answer: "polled answer", checks: 0, fail: false },
        // The SDK sends `result: null`; Go's json.RawMessage keeps a null and omitempty keeps it.
        result: null,
        next_check_after_seconds: 1,
        expires_after_seconds: 60,
        max_attempts: 5,
      }),
  },
  {
    name: "model/polling/check while the job runs",
    source: "internal/service/model_polling.go CheckPolling",
    request: (ctx) => ({
      method: "POST",
      path: `/plugin/${ctx.tenant}/dispatch/model/polling/check`,
      headers: dispatchHeaders,
      json: { user_id: "u1", data: checkData({ answer: "polled answer", checks: 0, fail: false }) },
    }),
    upstream: () =>
      ok({
        status: "running",
        plugin_state: { answer: "polled answer", checks: 1, fail: false },
        result: null,
        next_check_after_seconds: 1,
      }),
  },
  {
    name: "model/polling/check once the job is done",
    source: "internal/service/model_polling.go CheckPolling",
    request: (ctx) => ({
      method: "POST",
      path: `/plugin/${ctx.tenant}/dispatch/model/polling/check`,
      headers: dispatchHeaders,
      json: { user_id: "u1", data: checkData({ answer: "polled answer", checks: 1, fail: false }) },
    }),
    upstream: () =>
      ok({
        status: "succeeded",
        result: expect.objectContaining({
          model: "slow-chat",
          message: expect.objectContaining({ content: "polled answer" }),
          usage: expect.objectContaining({ prompt_tokens: 2, completion_tokens: 2 }),
        }),
      }),
  },
  {
    name: "model/polling/check of a job that failed: a result, not an error",
    source: "pkg/entities/model_entities/polling.go (status failed carries error)",
    request: (ctx) => ({
      method: "POST",
      path: `/plugin/${ctx.tenant}/dispatch/model/polling/check`,
      headers: dispatchHeaders,
      json: { data: checkData({ fail: true }) },
    }),
    upstream: () => ok({ status: "failed", result: null, error: "the job failed upstream" }),
  },
  {
    name: "model/polling/start the plugin refuses: HTTP 500 with the plugin's error",
    source: "internal/service/model_polling.go StartPolling (InvokePluginError, 500)",
    request: (ctx) => ({
      method: "POST",
      path: `/plugin/${ctx.tenant}/dispatch/model/polling/start`,
      headers: dispatchHeaders,
      json: { data: startData("slow-chat", "please REFUSE this") },
    }),
    upstream: () => ({
      status: 500,
      kind: "envelope",
      code: -500,
      errorType: "PluginInvokeError",
      message: pluginErrorInside("InvokeBadRequestError", /.*the prompt asked to be refused/),
    }),
  },
  {
    name: "model/polling/start of a model without the polling feature",
    source: "internal/service/model_polling.go StartPolling (InvokePluginError, 500)",
    request: (ctx) => ({
      method: "POST",
      path: `/plugin/${ctx.tenant}/dispatch/model/polling/start`,
      headers: dispatchHeaders,
      json: { data: startData("quick-chat", "hi") },
    }),
    upstream: () => ({
      status: 500,
      kind: "envelope",
      code: -500,
      errorType: "PluginInvokeError",
      message: expect.stringContaining("does not support polling"),
    }),
  },
  {
    name: "model/polling/check without plugin_state",
    source: "pkg/entities/requests/model.go RequestCheckPolling (plugin_state required,min=1)",
    request: (ctx) => ({
      method: "POST",
      path: `/plugin/${ctx.tenant}/dispatch/model/polling/check`,
      headers: dispatchHeaders,
      json: { data: { ...llm, model: "slow-chat" } },
    }),
    upstream: () => badBinding,
  },
  {
    name: "model/polling/start of a model type other than llm",
    source: "pkg/entities/requests/model.go RequestInvokeLLM (model_type eq=llm)",
    request: (ctx) => ({
      method: "POST",
      path: `/plugin/${ctx.tenant}/dispatch/model/polling/start`,
      headers: dispatchHeaders,
      json: { data: { ...startData("slow-chat", "hi"), model_type: "text-embedding" } },
    }),
    upstream: () => badBinding,
  },
  {
    name: "model/polling/start without X-Plugin-ID",
    source: "internal/server/middleware.go FetchPluginInstallation",
    request: (ctx) => ({
      method: "POST",
      path: `/plugin/${ctx.tenant}/dispatch/model/polling/start`,
      json: { data: startData("slow-chat", "hi") },
    }),
    upstream: () => ({
      status: 400,
      kind: "envelope",
      code: -400,
      errorType: "PluginDaemonBadRequestError",
      message: "plugin_id is required",
    }),
  },

  // ---------------------------------------------------------------------------------- v2 dispatch
  {
    name: "v2 dispatch of model/polling/start: no such route upstream",
    source: "internal/server/http_server.go invokeGroup (only agent_strategy and the generated routes)",
    request: (ctx) => ({
      method: "POST",
      path: "/v2/invoke/dispatch/model/polling/start",
      headers: { "x-plugin-unique-identifier": ctx.installed },
      json: { tenant_id: ctx.tenant, data: startData("slow-chat", "hi") },
    }),
    upstream: () => routeNotFound,
  },
  {
    name: "v2 dispatch without X-Plugin-Unique-Identifier",
    source: "internal/server/middleware.go FetchPluginDirect",
    request: (ctx) => ({
      method: "POST",
      path: "/v2/invoke/dispatch/llm/invoke",
      json: { tenant_id: ctx.tenant, data: {} },
    }),
    upstream: () => ({
      status: 400,
      kind: "envelope",
      code: -400,
      errorType: "PluginDaemonBadRequestError",
      message: "X-Plugin-Unique-Identifier header is required",
    }),
  },
  {
    name: "v2 dispatch with an identifier that is not one",
    source: "internal/server/middleware.go FetchPluginDirect",
    request: (ctx) => ({
      method: "POST",
      path: "/v2/invoke/dispatch/llm/invoke",
      headers: { "x-plugin-unique-identifier": "nope" },
      json: { tenant_id: ctx.tenant, data: {} },
    }),
    upstream: () => ({ status: 400, kind: "envelope", code: -400, errorType: "PluginUniqueIdentifierError" }),
  },
  {
    name: "v2 dispatch/llm/num_tokens streams envelopes",
    source: "internal/service/base_sse.go baseSSEService",
    request: (ctx) => ({
      method: "POST",
      path: "/v2/invoke/dispatch/llm/num_tokens",
      headers: { "x-plugin-unique-identifier": ctx.installed },
      json: {
        tenant_id: ctx.tenant,
        user_id: "u1",
        data: {
          ...llm,
          model: "slow-chat",
          prompt_messages: [{ role: "user", content: "three short words" }],
          tools: [],
        },
      },
    }),
    upstream: () => ({ status: 200, kind: "sse", code: 0, data: [{ num_tokens: 3 }] }),
  },

  // ---------------------------------------------------------------------------------- upgrades that change state (last)
  {
    name: "install/upgrade to a version another tenant runs: synchronous, no task",
    source: "internal/service/install_plugin.go UpgradePlugin (models.Plugin found: curd.UpgradePlugin)",
    request: (ctx) => ({
      method: "POST",
      path: `${M(ctx)}/install/upgrade`,
      json: {
        original_plugin_unique_identifier: ctx.installed,
        new_plugin_unique_identifier: ctx.installedElsewhere,
        source: "package",
        meta: { note: "sync" },
      },
    }),
    upstream: () => ok({ all_installed: true, task_id: "" }),
  },
  {
    name: "list right after the synchronous upgrade shows the new version",
    source: "internal/types/models/curd UpgradePlugin (installation swapped in the same transaction)",
    request: (ctx) => ({ method: "GET", path: `${M(ctx)}/list?page=1&page_size=10` }),
    upstream: (ctx) =>
      ok({
        list: [
          expect.objectContaining({
            plugin_unique_identifier: ctx.installedElsewhere,
            version: "0.0.2",
            meta: { note: "sync" },
          }),
        ],
        total: 1,
      }),
  },
  {
    name: "install/upgrade to a version installed nowhere: a task",
    source: "internal/service/install_plugin.go UpgradePlugin (ProcessUpgradeJob)",
    request: (ctx) => ({
      method: "POST",
      path: `${M(ctx)}/install/upgrade`,
      // github source, no release named: the task fails at once without a download
      json: {
        original_plugin_unique_identifier: ctx.installedElsewhere,
        new_plugin_unique_identifier: `fixtures/polling-llm:9.9.9@${"e".repeat(64)}`,
        source: "github",
        meta: {},
      },
    }),
    upstream: () => ok({ all_installed: false, task_id: expect.stringMatching(/^[0-9a-f-]{36}$/) }),
  },
];
