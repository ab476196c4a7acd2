/**
 * The first bytes a redirected workload sends, read for the name it wants (DESIGN.md section 3,
 * step 4): a TLS ClientHello's server name, or an HTTP/1.x request's host.
 *
 * The first byte decides what the bytes are, once: 22 (a TLS handshake record) is TLS, an
 * uppercase ASCII letter is HTTP (every method in use starts with one), anything else is "other".
 * Bytes that start like TLS or HTTP and then break the protocol throw PeekError: they never get
 * the treatment of "other". need_more means every byte present fits a valid ClientHello or request
 * head; it is never given for MAX_PEEK_BYTES bytes or more. No bytes at all is need_more too: a
 * protocol where the server speaks first shows up as the caller's timeout, not here.
 *
 * Pure and synchronous; the caller keeps the bytes and passes them all again as more arrive.
 */
import { parseClientHello, type TlsHello } from "./client-hello.ts";
import { parseHttpHead, type HttpHead } from "./http-head.ts";

export { MAX_PEEK_BYTES, PEEK_ERROR_CODES, PeekError, type PeekErrorCode } from "./errors.ts";
export type { HttpHead, TlsHello };

export type PeekResult = { readonly kind: "need_more" } | TlsHello | HttpHead | { readonly kind: "other" };

const NEED_MORE: PeekResult = Object.freeze({ kind: "need_more" });
const OTHER: PeekResult = Object.freeze({ kind: "other" });
const TLS_HANDSHAKE = 22;

/** Throws PeekError on a malformed or hostile prefix that is clearly TLS or HTTP. */
export function peek(bytes: Uint8Array): PeekResult {
  const first = bytes[0];
  if (first === undefined) return NEED_MORE;
  if (first === TLS_HANDSHAKE) return parseClientHello(bytes) ?? NEED_MORE;
  if (first >= 0x41 && first <= 0x5a) return parseHttpHead(bytes) ?? NEED_MORE;
  return OTHER;
}
