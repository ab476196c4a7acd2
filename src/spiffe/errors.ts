/**
 * Errors of the SPIFFE ID parser, each rejection with its own stable code.
 *
 * The codes follow the rules of the SPIFFE-ID standard
 * (https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md, sections 2.1 to 2.3 and 2.5);
 * `spiffeid_no_leading_slash`, `spiffeid_trust_domain_has_path` and `spiffeid_bad_pattern` are
 * this module's own, for `SpiffeId.fromPath`, `TrustDomain.parse` and `parsePattern`.
 */
import { TidegateError } from "../errors.ts";

export const SPIFFE_ID_ERROR_CODES = [
  "spiffeid_empty",
  "spiffeid_wrong_scheme",
  "spiffeid_missing_trust_domain",
  "spiffeid_bad_trust_domain_char",
  "spiffeid_bad_path_segment_char",
  "spiffeid_empty_segment",
  "spiffeid_dot_segment",
  "spiffeid_trailing_slash",
  "spiffeid_trust_domain_too_long",
  "spiffeid_too_long",
  "spiffeid_query",
  "spiffeid_fragment",
  "spiffeid_port",
  "spiffeid_userinfo",
  "spiffeid_percent_encoding",
  "spiffeid_no_leading_slash",
  "spiffeid_trust_domain_has_path",
  "spiffeid_bad_pattern",
] as const;

export type SpiffeIdErrorCode = (typeof SPIFFE_ID_ERROR_CODES)[number];

export class SpiffeIdError extends TidegateError<SpiffeIdErrorCode> {}

export { quote } from "../errors.ts";

/** The whole character (code point) of `text` at UTF-16 index `pos`, for messages. */
export function charAt(text: string, pos: number): string {
  return String.fromCodePoint(text.codePointAt(pos) ?? 0);
}
