/**
 * `audit.on_failure` of server.yaml (docs/audit.md, "The server's log"): what the server does
 * while its own audit log cannot be written (a write failed: disk full, I/O error, the log
 * removed; the log retries every second).
 *
 * - `refuse` (the default, as the agent's `audit.on_failure`): whatever would write an audit
 *   event is refused before it happens, with 503 `audit_unavailable`: join-token attestation,
 *   node SVID renewal, workload SVID issuance, and the admin API's changes (entries created or
 *   deleted, join tokens created, a CA rotation asked). Reads (sync, the bundle, status, lists)
 *   go on. The refusal comes before a join token is consumed, so the token stays usable.
 * - `serve`: served on; events wait in memory (up to 10,000, then counted in an `audit_gap`).
 *
 * Not gated: what the server does on its own (the CA keeper's scheduled rotations, federated
 * bundle updates); their events wait in memory like any other. The write that finds the log
 * unwritable belongs to an action already done: that one event waits, every later action is refused.
 */
import { ApiError } from "./errors.ts";

export type AuditOnFailure = "refuse" | "serve";

/** What the gate reads of the log (AuditLog's getters). */
export interface AuditHealth {
  readonly healthy: boolean;
  readonly error: string | null;
}

/** Throws 503 audit_unavailable for `what` while the log is unhealthy and on_failure is refuse. */
export type AuditGate = (what: string) => void;

/** Seconds a refused client is told to wait (the log retries every second). */
export const AUDIT_RETRY_AFTER_SECONDS = 5;

export function auditGate(log: AuditHealth, onFailure: AuditOnFailure): AuditGate {
  return (what) => {
    if (onFailure === "serve" || log.healthy) return;
    throw new ApiError("audit_unavailable", `server: ${what} refused: the server's audit log cannot be written (${log.error ?? "unknown error"}; audit.on_failure: refuse), try again later`, {
      retryAfter: AUDIT_RETRY_AFTER_SECONDS,
    });
  };
}
