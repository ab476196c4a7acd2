/**
 * The audit log format's errors (docs/audit.md, "Verification"). Messages start with "audit: " and
 * name the offending file, line, seq or field; never a field's value beyond what the format itself
 * allows (events carry no secret value: secret names only).
 */
import { TidegateError } from "../../errors.ts";

export const AUDIT_ERROR_CODES = [
  /** An event that fails its type's schema, an unknown type, or arguments formatLine refuses. */
  "audit_bad_event",
  /** A line that is not canonical JSON of an object, or whose seq, time, type or prev is bad, or that fails its schema. */
  "audit_malformed_line",
  /** The last line of a file without its "\n", not excused by an audit_recovered event that opens the next file. */
  "audit_torn_line",
  /** A seq that is not the previous one plus 1: a line deleted, inserted or moved. */
  "audit_seq_gap",
  /** A prev that is not the SHA-256 of the previous line: the previous line was edited. */
  "audit_prev_mismatch",
  /** The chain's first line (seq 1) with a prev other than 64 zeros. */
  "audit_bad_genesis",
  /** A checkpoint whose covers is not its own seq - 1 and prev. */
  "audit_checkpoint_covers",
  /** A checkpoint whose events is not the number of lines since the previous checkpoint. */
  "audit_checkpoint_count",
  /** A checkpoint signature that does not verify with the leaf certificate's key. */
  "audit_checkpoint_signature",
  /** A checkpoint dated before the previous checkpoint of the chain (the writer never dates one so). */
  "audit_checkpoint_time_reversed",
  /** A checkpoint chain that does not parse, does not verify against the trust bundle at the checkpoint's time, or whose leaf is not the signer. */
  "audit_checkpoint_chain",
  /** The files end before the checkpoint recorded in the agent's state: the tail was cut. */
  "audit_tail_cut",
  /** The line at the state's checkpoint seq is not that checkpoint (another hash). */
  "audit_state_mismatch",
  /** No line at all in the files given. */
  "audit_empty",
  /** A state argument that is not {seq: positive integer, hash: 64 lowercase hex}. */
  "audit_bad_state",
  /** A checkpoint asked of a chain builder that has no signer. */
  "audit_no_signer",
] as const;

export type AuditErrorCode = (typeof AUDIT_ERROR_CODES)[number];

export class AuditError extends TidegateError<AuditErrorCode> {}

export function auditError(code: AuditErrorCode, why: string, cause?: unknown): AuditError {
  return new AuditError(code, `audit: ${why}`, cause === undefined ? undefined : { cause });
}

export { quote } from "../../errors.ts";
