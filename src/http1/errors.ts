/**
 * The errors of the HTTP/1.1 parser and serializer (RFC 9112), and the limits whose excess is
 * one of them. Every code means the message is refused and the connection is not used for
 * another message. Messages start with "http1: " and name the offending part; they quote only
 * the values of Host, Content-Length, Transfer-Encoding and chunk sizes, never another header
 * value, a request target or a body: those may carry a secret.
 */
import { TidegateError } from "../errors.ts";

export const HTTP1_ERROR_CODES = [
  /** A method that is empty or not a token (RFC 9110 section 9.1). */
  "http1_bad_method",
  /** A request target with a byte outside visible ASCII, a "#", or the wrong form for its method (RFC 9112 section 3.2). */
  "http1_bad_target",
  /** A version other than HTTP/1.1 or HTTP/1.0 (HTTP/0.9 and the HTTP/2 preface included). */
  "http1_bad_version",
  /** A request or status line of the wrong shape: missing parts, two spaces, bytes after the version. */
  "http1_bad_start_line",
  /** A status code outside 100..599, a 101 to a request that asked for no upgrade, a bad reason byte. */
  "http1_bad_status",
  /** A request or status line longer than `maxStartLineBytes`. */
  "http1_start_line_too_long",
  /** A head (start line to empty line) or a trailer section longer than `maxHeadBytes`. */
  "http1_head_too_large",
  /** More than `maxHeaders` header (or trailer) lines. */
  "http1_too_many_headers",
  /** An LF not preceded by CR, or a CR not followed by LF, where a line ends (RFC 9112 section 2.2). */
  "http1_bad_line_ending",
  /** A line starting with SP or HTAB: obsolete line folding (RFC 9112 section 5.2), or whitespace before the first header. */
  "http1_obs_fold",
  /** A header name that is empty or not a token, or a line without a colon. */
  "http1_bad_header_name",
  /** Whitespace between a header name and its colon (RFC 9112 section 5.1). */
  "http1_space_before_colon",
  /** A CR, NUL, other control byte or DEL inside a header value; a Connection or Upgrade element that is not a token. */
  "http1_bad_header_value",
  /** Two Host headers (RFC 9112 section 3.2). */
  "http1_duplicate_host",
  /** An HTTP/1.1 request without Host (RFC 9112 section 3.2). */
  "http1_missing_host",
  /** A Host or target authority that is not `uri-host [":" port]`, or a Host that disagrees with the target. */
  "http1_bad_host",
  /** A Content-Length that is not a decimal number of at most 2^53 - 1 (RFC 9110 section 8.6). */
  "http1_bad_content_length",
  /** Content-Length values that differ, within one header or across several. */
  "http1_differing_content_length",
  /** Content-Length and Transfer-Encoding together (RFC 9112 section 6.1). */
  "http1_conflicting_framing",
  /** A Transfer-Encoding other than exactly one "chunked", or any in HTTP/1.0 (RFC 9112 section 6.1). */
  "http1_bad_transfer_encoding",
  /** A chunk size that is empty, not hex, over 16 digits or over 2^53 - 1 (RFC 9112 section 7.1). */
  "http1_bad_chunk_size",
  /** A chunk extension that is not `;name[=token|quoted-string]` (RFC 9112 section 7.1.1). */
  "http1_bad_chunk_ext",
  /** Chunk extensions longer than `maxChunkExtBytes`. */
  "http1_chunk_ext_too_long",
  /** Chunk data not followed by CRLF. */
  "http1_bad_chunk_terminator",
  /** A response when no request is waiting for one. */
  "http1_unexpected_response",
  /** The connection ended inside a message (`finish()`). */
  "http1_truncated",
  /** More than `maxHeadBytes` held after a CONNECT or upgrade request, before resume() or tunnel(). */
  "http1_held_too_large",
] as const;

export type Http1ErrorCode = (typeof HTTP1_ERROR_CODES)[number];

export class Http1Error extends TidegateError<Http1ErrorCode> {}

export function fail(code: Http1ErrorCode, why: string): Http1Error {
  return new Http1Error(code, `http1: ${why}`);
}

/** Size limits of one parser; every field has a default (DEFAULT_LIMITS). */
export interface Http1Limits {
  /** The request or status line without its CRLF. */
  readonly maxStartLineBytes: number;
  /** The head from the start line through the empty line; also each trailer section. */
  readonly maxHeadBytes: number;
  /** Header lines of one head (or trailer lines of one section). */
  readonly maxHeaders: number;
  /** The bytes between a chunk size and its CRLF. */
  readonly maxChunkExtBytes: number;
}

export const DEFAULT_LIMITS: Http1Limits = Object.freeze({
  maxStartLineBytes: 8 * 1024,
  maxHeadBytes: 32 * 1024,
  maxHeaders: 100,
  maxChunkExtBytes: 256,
});

export function limitsOf(partial: Partial<Http1Limits> | undefined): Http1Limits {
  return partial === undefined ? DEFAULT_LIMITS : Object.freeze({ ...DEFAULT_LIMITS, ...partial });
}
