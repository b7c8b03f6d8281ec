/**
 * Callback tokens for plugin sessions. A plugin Lambda calls the daemon back
 * (`/backwards-invocation/transaction`) with the session id it was given; the token proves the
 * caller received that session from the daemon, for that tenant, so one plugin cannot act for
 * another session by guessing or replaying ids. The daemon signs with a key only it holds (derived
 * from the daemon key) and verifies statelessly on any replica.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

/** Versioned, so the signed text can change without old tokens verifying under a new meaning. */
const CONTEXT = "dify-plugin-session-callback:v1";

function mac(sessionId: string, tenantId: string, secret: string): Buffer {
  // JSON keeps the fields apart: no choice of ids can make two different pairs sign the same text.
  return createHmac("sha256", secret)
    .update(JSON.stringify([CONTEXT, tenantId, sessionId]))
    .digest();
}

/** The token handed to the plugin with the session (base64url, 43 characters). */
export function sessionCallbackToken(sessionId: string, tenantId: string, secret: string): string {
  if (!secret) throw new Error("session callback tokens need a non-empty secret");
  return mac(sessionId, tenantId, secret).toString("base64url");
}

/** True when `token` was issued for exactly this session and tenant with this secret. */
export function verifySessionCallbackToken(
  token: string | undefined | null,
  sessionId: string,
  tenantId: string,
  secret: string,
): boolean {
  if (!token || !secret) return false;
  const expected = mac(sessionId, tenantId, secret);
  const given = Buffer.from(token, "base64url");
  // Compared in constant time; a length mismatch says nothing about the key.
  return given.length === expected.length && timingSafeEqual(given, expected) && given.toString("base64url") === token;
}
