/**
 * Every rejection of the CA (src/ca), with the rule it enforces. Messages start with "ca:" and
 * name the offending file, serial or setting; never key material.
 */
import { TidegateError } from "../errors.ts";

export const CA_ERROR_CODES = [
  "ca_bad_settings", // a TTL not a positive whole number of seconds, signing TTL over the root TTL, root_rotate_before not between the refresh hint and the root TTL
  "ca_exists", // init over storage that already holds a CA (never overwritten)
  "ca_missing", // load from storage that holds no CA (never initialised implicitly)
  "ca_corrupt", // ca.json unreadable or inconsistent, a key file missing or not a P-256 PKCS#8 key (the file is named)
  "ca_key_permissions", // a key file readable or writable by group/other, not a regular file, or owned by another user
  "ca_storage", // an I/O failure writing the CA (cause: the system error)
  "ca_self_check_failed", // a new (or loaded) CA key did not sign a throwaway SVID that tidegate's verifier accepts; the old CA stays active
  "ca_expired", // no signing CA valid at the given time (the root expired without a replacement, or tick was not called)
  "ca_root_pending", // rotate-ca --root while a published root still waits for its activation
  "ca_foreign_id", // an SVID asked for a SPIFFE ID outside the CA's trust domain
] as const;

export type CaErrorCode = (typeof CA_ERROR_CODES)[number];

export class CaError extends TidegateError<CaErrorCode> {}
