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
 * Synchronous. A connection's bytes arrive in pieces: a Peeker is given all of them so far at each
 * arrival and answers as peek would on them, but resumes where the last call stopped, so n bytes
 * cost O(n) in all however they are split (peek on each arrival would cost O(n) each time, a
 * workload sending its head a byte per read would make the agent read 16 KiB per byte).
 */
import { ClientHelloReader, type TlsHello } from "./client-hello.ts";
import { PeekError } from "./errors.ts";
import { HttpHeadReader, type HttpHead } from "./http-head.ts";

export { MAX_PEEK_BYTES, PEEK_ERROR_CODES, PeekError, type PeekErrorCode } from "./errors.ts";
export type { HttpHead, TlsHello };

export type PeekResult = { readonly kind: "need_more" } | TlsHello | HttpHead | { readonly kind: "other" };

const NEED_MORE: PeekResult = Object.freeze({ kind: "need_more" });
const OTHER: PeekResult = Object.freeze({ kind: "other" });
const TLS_HANDSHAKE = 22;

/** Throws PeekError on a malformed or hostile prefix that is clearly TLS or HTTP. */
export function peek(bytes: Uint8Array): PeekResult {
  return new Peeker().next(bytes);
}

/** One connection's peek, fed as its bytes arrive. */
export class Peeker {
  private reader: ClientHelloReader | HttpHeadReader | null = null;
  private answer: PeekResult | PeekError | null = null;

  /**
   * `bytes`: every byte so far, those of the call before first. Returns or throws what peek(bytes)
   * would; once it has decided (anything but need_more), the same answer again, whatever follows.
   */
  next(bytes: Uint8Array): PeekResult {
    this.answer ??= this.decide(bytes);
    if (this.answer === null) return NEED_MORE;
    if (this.answer instanceof PeekError) throw this.answer;
    return this.answer;
  }

  /** The answer once decided, null before. */
  private decide(bytes: Uint8Array): PeekResult | PeekError | null {
    if (this.reader === null) {
      const first = bytes[0];
      if (first === undefined) return null;
      if (first === TLS_HANDSHAKE) this.reader = new ClientHelloReader();
      else if (first >= 0x41 && first <= 0x5a) this.reader = new HttpHeadReader();
      else return OTHER;
    }
    try {
      return this.reader.next(bytes);
    } catch (e) {
      if (e instanceof PeekError) return e;
      throw e;
    }
  }
}
