/**
 * Errors as the upstream daemon names them. Dify parses `error_type` out of the envelope's
 * JSON-encoded `message` and maps each type to its own exception class, so these names are
 * part of the wire contract.
 */
export type ErrorType =
  | "PluginDaemonInternalServerError"
  | "PluginDaemonBadRequestError"
  | "PluginDaemonNotFoundError"
  | "PluginDaemonUnauthorizedError"
  | "PluginDaemonPermissionDeniedError"
  | "PluginUniqueIdentifierError"
  | "PluginNotFoundError"
  | "PluginPermissionDeniedError"
  | "PluginInvokeError"
  | "ConnectionClosedError"
  | "unknown";

const CODE_OF: Record<ErrorType, number> = {
  PluginDaemonInternalServerError: -500,
  PluginDaemonBadRequestError: -400,
  PluginDaemonNotFoundError: -404,
  PluginDaemonUnauthorizedError: -401,
  PluginDaemonPermissionDeniedError: -403,
  PluginUniqueIdentifierError: -400,
  PluginNotFoundError: -404,
  PluginPermissionDeniedError: -403,
  PluginInvokeError: -500,
  ConnectionClosedError: -500,
  unknown: -500,
};

export class DaemonError extends Error {
  readonly errorType: ErrorType;
  readonly code: number;
  readonly args: Record<string, unknown> | null;
  /**
   * HTTP status to answer with. Upstream answers service errors with 200 and a negative code,
   * and only request-level failures (auth, binding, unknown plugin header) with 4xx/5xx.
   */
  httpStatus = 200;

  constructor(errorType: ErrorType, message: string, args: Record<string, unknown> | null = null) {
    super(message);
    this.name = "DaemonError";
    this.errorType = errorType;
    this.code = CODE_OF[errorType];
    this.args = args;
  }

  withStatus(status: number): this {
    this.httpStatus = status;
    return this;
  }
}

export const badRequest = (message: string) => new DaemonError("PluginDaemonBadRequestError", message);
export const notFound = (message: string) => new DaemonError("PluginDaemonNotFoundError", message);
export const internalError = (message: string) => new DaemonError("PluginDaemonInternalServerError", message);
export const pluginNotFound = () => new DaemonError("PluginNotFoundError", "plugin not found");
export const identifierError = (message: string) => new DaemonError("PluginUniqueIdentifierError", message);
export const permissionDenied = (message: string) => new DaemonError("PluginPermissionDeniedError", message);
export const unauthorized = () => new DaemonError("PluginDaemonUnauthorizedError", "unauthorized").withStatus(401);

/** Turns anything thrown into a DaemonError without losing a DaemonError's own type. */
export function asDaemonError(err: unknown): DaemonError {
  if (err instanceof DaemonError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return internalError(message);
}
