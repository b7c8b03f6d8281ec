/**
 * The request a piece of code runs for, carried through callbacks and promises
 * (AsyncLocalStorage), so an error that escapes every handler can still be logged with its
 * request and fail that request instead of the process.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { randomUUID } from "node:crypto";
import { type LogFields, useRequestLogFields } from "../observability/log-context.js";

export interface RequestScope {
  method: string;
  path: string;
  /** Ends the request with an internal error (or cuts its stream if the answer already started). */
  fail(err: unknown): void;
}

/** The request and its log fields, in one asynchronous context (see log-context.ts). */
const storage = new AsyncLocalStorage<{ scope: RequestScope; logFields: LogFields }>();
useRequestLogFields(
  () => storage.getStore()?.logFields,
  (work) => storage.exit(work),
);

/** Each request also gets log fields of its own, starting with a request id. */
export const runInRequestScope = <T>(scope: RequestScope, fn: () => T): T =>
  storage.run({ scope, logFields: { request_id: randomUUID() } }, fn);

/** The request whose callback is running, if any. */
export const currentRequest = (): RequestScope | undefined => storage.getStore()?.scope;
