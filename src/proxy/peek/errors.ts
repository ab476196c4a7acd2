/**
 * The errors of the first-bytes peek (DESIGN.md section 3, step 4), and the one size limit whose
 * excess is one of them. Every code means the connection is refused: bytes that start like TLS or
 * HTTP and then break the protocol are never passed on as "other". Messages start with "peek: "
 * and name the offending input, never a header value that could carry a secret (only the name of
 * such a header, and the values of Host, Content-Length and Transfer-Encoding).
 */
import { TidegateError } from "../../errors.ts";

/** A ClientHello (with its record headers) or a request head longer than this is refused. */
export const MAX_PEEK_BYTES = 16 * 1024;

export const PEEK_ERROR_CODES = [
  /** A record or ClientHello field that breaks RFC 8446 section 4.1.2 / 5.1, or a length outside its container. */
  "peek_tls_malformed",
  /** A server_name extension that names no single acceptable host: NUL, non-LDH byte, over 255 bytes, empty, two entries. */
  "peek_tls_bad_sni",
  /** A request line or header section that is not RFC 9112 HTTP/1.1 or HTTP/1.0. */
  "peek_http_malformed",
  /** What servers read differently (RFC 9112 section 11.2): framing conflicts, bare CR or LF, folding, odd names. */
  "peek_http_smuggling",
  /** A missing or invalid Host, a bad authority in the request target, or a Host that disagrees with it. */
  "peek_http_bad_host",
  /** More than MAX_PEEK_BYTES, a line over 8192 bytes, or over 100 header lines. */
  "peek_too_large",
] as const;

export type PeekErrorCode = (typeof PEEK_ERROR_CODES)[number];

export class PeekError extends TidegateError<PeekErrorCode> {}
