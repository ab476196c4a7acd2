/**
 * What the rest of tidegate sees of an audit sink: `Audit` (emit an event), the agent's hold on
 * its log (`AgentAuditLog`), the checkpoint signer, and the sinks that write nothing.
 */
import type { AuditEventType } from "../format/index.ts";

export type Fields = Readonly<Record<string, unknown>>;

/** Where events go: the log, or nowhere (NULL_AUDIT, for tests and the benchmark's baseline). */
export interface Audit {
  emit(type: AuditEventType, fields: Fields): void;
}

export const NULL_AUDIT: Audit = Object.freeze({ emit() {} });

/** What the agent holds of its log: AuditLog, or for bench/audit.ts's baseline binary NullAuditLog. */
export interface AgentAuditLog extends Audit {
  readonly healthy: boolean;
  readonly seq: number;
  checkpoint(): void;
  close(): void;
}

/** Writes nothing: only a binary built with `scripts/build.ts --bench-null-audit` uses it. */
export class NullAuditLog implements AgentAuditLog {
  readonly healthy = true;
  readonly seq = 0;
  emit(): void {}
  checkpoint(): void {}
  close(): void {}
}

/** Signs checkpoints: the node's (or server's) X.509-SVID. */
export interface AuditSigner {
  readonly id: string;
  /** DER: leaf first, then intermediates. */
  readonly chain: readonly Uint8Array[];
  /** ECDSA P-256 SHA-256, IEEE P1363 (r || s). */
  sign(payload: Uint8Array): Uint8Array;
  /**
   * The leaf's notAfter (ms). A checkpoint is dated later than the clock (after the clock stepped
   * back) only up to it: a date past it would never verify (audit-log.ts).
   */
  readonly notAfterMs?: number;
}
