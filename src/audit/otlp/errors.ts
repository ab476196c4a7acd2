/**
 * Errors of the OTLP mapping of audit events (docs/audit.md, "Export"). Messages start with
 * "audit: otlp" and name the offending event (by seq) or the JSON path of the offending part of a
 * request; never a whole line or value (lines hold no secret values, but they can be long).
 */
import { TidegateError } from "../../errors.ts";

export const OTLP_ERROR_CODES = [
  /** An event the encoder cannot map: bad seq, time, type, line, or a field value that is not JSON data. */
  "otlp_bad_event",
  /** A request body that is not the canonical OTLP/JSON form of tidegate audit records. */
  "otlp_bad_request",
] as const;

export type OtlpErrorCode = (typeof OTLP_ERROR_CODES)[number];

export class OtlpError extends TidegateError<OtlpErrorCode> {}
