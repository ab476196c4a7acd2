/**
 * Errors of the audit exporter (docs/audit.md, "Export"). Messages start with "audit: export" and
 * name the collector by scheme, host, port and path only: never the URL's query, never a header
 * value, never a line's content.
 */
import { TidegateError } from "../../errors.ts";

export const EXPORT_ERROR_CODES = [
  /** The collector URL is not an http or https URL, or carries a user name or password. */
  "export_bad_url",
  /** An option out of range (batchMax, timeoutMs, pollMs), or a header that is not a valid HTTP field. */
  "export_bad_option",
  /** The collector answered a status that must not be retried (a 4xx other than 408 and 429, a 3xx, a 5xx other than 502, 503, 504). */
  "export_rejected",
  /** The collector answered 2xx but reported rejected log records (OTLP partial success): not retried, not skipped. */
  "export_partial",
  /** The source's next event is not the cursor's seq + 1 (files deleted before export, or a broken chain): nothing is skipped. */
  "export_source_gap",
  /** An audit file the file source cannot read as lines of JSON events. */
  "export_bad_source",
  /** A cursor file that is not `{"seq": N}`. */
  "export_bad_cursor",
  /** The cursor file cannot be written (its folder is missing, read-only, full...): said before the first batch, or after an acknowledged one whose seq it could not keep. */
  "export_cursor_unwritable",
] as const;

export type ExportErrorCode = (typeof EXPORT_ERROR_CODES)[number];

export class ExportError extends TidegateError<ExportErrorCode> {
  /** The HTTP status of an `export_rejected`. */
  readonly status: number | undefined;

  constructor(code: ExportErrorCode, message: string, options?: { cause?: unknown; status?: number }) {
    super(code, message, options);
    this.status = options?.status;
  }
}
