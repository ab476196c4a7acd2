/**
 * Errors of the identity server's datastore, each with a stable code.
 *
 * Messages start with "store: ", name the file or the (non-secret) record key, and never contain
 * a join token or a token hash: a caller that passed a raw token by mistake must not see it echoed.
 */
import { TidegateError } from "../../errors.ts";

export const STORE_ERROR_CODES = [
  // Opening: the file is refused as it is; nothing is re-initialised or overwritten.
  "store_locked", // another process holds the file (another server running?)
  "store_corrupt", // not a SQLite file, or PRAGMA quick_check failed
  "store_foreign", // a SQLite database of another application
  "store_too_new", // schema version newer than this code knows
  "store_outdated", // read-only open of a schema older than this code (open read-write to migrate)
  "store_missing", // read-only open of a file that does not exist
  "store_io", // the file or its directory cannot be created, opened or written
  // Use.
  "store_closed", // a call after close()
  "store_readonly", // a write on a store opened read-only
  "store_busy", // another connection kept the write lock past the busy timeout (shared mode only)
  "store_invalid_record", // input that would not read back as a valid record
  "store_entry_exists", // same SPIFFE ID, parent and selectors as an existing entry
  "store_token_exists", // a join token with the same hash already exists
  "store_token_unknown",
  "store_token_used",
  "store_token_expired",
  "store_serial_exists", // an issued certificate with the same serial is already recorded
  "store_failed", // any other SQLite failure (the cause is attached)
] as const;

export type StoreErrorCode = (typeof STORE_ERROR_CODES)[number];

export class StoreError extends TidegateError<StoreErrorCode> {}

export { quote } from "../../errors.ts";
