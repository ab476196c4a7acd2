/**
 * Errors of the secret store. Messages start with "secrets: " and name the secret (a name is not
 * secret) and the file, never a value: no message, cause or log line carries a value or any part
 * of one (tests set a value, trigger every error and search the messages for it).
 */
import { TidegateError } from "../errors.ts";

export const SECRET_ERROR_CODES = [
  /** A name that is not 1-64 of [A-Za-z0-9_.-] starting with a letter, digit or '_' (not repeated). */
  "secret_bad_name",
  /** A value that is empty, too long, not UTF-8, or holds a control character other than tab. */
  "secret_bad_value",
  /** `rm` of a name the store does not hold. */
  "secret_not_found",
  /** `tidegate secret` run by a user other than root. */
  "secret_not_root",
  /** Reading the value was abandoned (Ctrl-C or Ctrl-D at the prompt). */
  "secret_input_aborted",
  /** A file of the store cannot be read (other than missing), or the folder cannot be made. */
  "secret_store_unreadable",
  /** secrets.json is not the store's format (JSON, version 1, fields, base64, sizes). */
  "secret_store_corrupt",
  /** A file of the store is a symbolic link, not a regular file, not this user's, or open to group/other. */
  "secret_store_permissions",
  /** secrets.json holds secrets but the key file is missing. */
  "secret_key_missing",
  /** The key file is not 32 bytes. */
  "secret_key_bad",
  /** A value does not decrypt: the file was changed, a value was moved between names, or the key is another. */
  "secret_decrypt_failed",
  /** Writing the store failed; the previous secrets.json is left as it was (unless only the folder fsync after the rename failed, which the message says). */
  "secret_write_failed",
  /** Another writer held the store's lock for longer than the wait. */
  "secret_store_busy",
] as const;

export type SecretErrorCode = (typeof SECRET_ERROR_CODES)[number];

export class SecretError extends TidegateError<SecretErrorCode> {}

/** The errno code of a Node file-system error, if any. */
export function errnoCode(e: unknown): string | undefined {
  return typeof e === "object" && e !== null && "code" in e ? String((e as { code: unknown }).code) : undefined;
}
