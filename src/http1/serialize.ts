/**
 * Heads and chunks back to bytes. What is written is checked as the parser would check it, so a
 * head built by the caller (an injected header, a rewritten target) can never split into two
 * messages: the method and names are tokens, the target visible ASCII without "#", values and the
 * reason HTAB / SP / VCHAR / obs-text (never CR, LF or NUL), every character at most U+00FF
 * (written as one byte). The framing headers are written as given: keeping them consistent with
 * the body is the caller's. Errors name the header, never its value.
 */
import { quote } from "../errors.ts";
import { TARGET_BYTE, TCHAR, VALUE_BYTE } from "./bytes.ts";
import { fail, type Http1ErrorCode } from "./errors.ts";
import { HeaderList, type Header } from "./headers.ts";
import type { HttpVersion } from "./types.ts";

export interface RequestHeadInit {
  readonly method: string;
  readonly target: string;
  /** HTTP/1.1 when absent. */
  readonly version?: HttpVersion;
  /** A HeaderList or any list of [name, value]. */
  readonly headers: Iterable<Header>;
}

export interface ResponseHeadInit {
  readonly status: number;
  /** Empty when absent. */
  readonly reason?: string;
  readonly version?: HttpVersion;
  readonly headers: Iterable<Header>;
}

/** "100" to "599", made once: the status line's code without a string per answer. */
const STATUS_TEXT: readonly string[] = Array.from({ length: 500 }, (_, i) => String(i + 100));

/** Grows as needed; each result is a copy of its start. */
let scratch = new Uint8Array(4096);
let at = 0;

function room(n: number): void {
  if (at + n <= scratch.length) return;
  const next = new Uint8Array(Math.max(scratch.length * 2, at + n));
  next.set(scratch.subarray(0, at));
  scratch = next;
}

/**
 * Writes `s`, each char checked against `table` (a byte class of bytes.ts). An error names `what`,
 * followed by `name` quoted when given (a label and a name, not a closure: this runs for every
 * header of every request and answer the proxy writes).
 */
function put(s: string, table: Uint8Array, code: Http1ErrorCode, what: string, name?: string): void {
  room(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff || table[c] !== 1) throw fail(code, `serialize: ${name === undefined ? what : `${what} ${quote(name)}`}: character U+${c.toString(16).padStart(4, "0")} is not allowed`);
    scratch[at++] = c;
  }
}

function raw(s: string): void {
  room(s.length);
  for (let i = 0; i < s.length; i++) scratch[at++] = s.charCodeAt(i);
}

function crlf(): void {
  room(2);
  scratch[at++] = 13;
  scratch[at++] = 10;
}

function version(v: HttpVersion | undefined): string {
  if (v === undefined) return "HTTP/1.1";
  if (v !== "HTTP/1.1" && v !== "HTTP/1.0") throw fail("http1_bad_version", `serialize: version ${quote(String(v))}: want HTTP/1.1 or HTTP/1.0`);
  return v;
}

function fields(headers: Iterable<Header>): void {
  // by index, without destructuring: this runs for every header the proxy writes
  const list: readonly Header[] = Array.isArray(headers) ? headers : headers instanceof HeaderList ? headers.entries : [...headers];
  for (let i = 0; i < list.length; i++) {
    const h = list[i]!;
    const name = h[0];
    const value = h[1];
    if (name.length === 0) throw fail("http1_bad_header_name", "serialize: an empty header name");
    put(name, TCHAR, "http1_bad_header_name", "header name", name);
    raw(": ");
    put(value, VALUE_BYTE, "http1_bad_header_value", "the value of header", name);
    crlf();
  }
  crlf();
}

function finish(): Uint8Array {
  const out = scratch.slice(0, at);
  at = 0;
  return out;
}

// Each head is written from `at = 0` and, on an error, `at` goes back to 0, so a failed head
// leaves nothing behind for the next. Written out in each function, not through a callback: a
// closure per head would be garbage on every request and answer the proxy writes.

/** `method SP target SP version CRLF`, the fields, CRLF. Throws Http1Error. */
export function serializeRequestHead(h: RequestHeadInit): Uint8Array {
  return requestHeadBytes(h.method, h.target, h.version, h.headers);
}

/** serializeRequestHead without an init object (the proxy writes one per request). */
export function requestHeadBytes(method: string, target: string, v: HttpVersion | undefined, headers: Iterable<Header>): Uint8Array {
  at = 0;
  try {
    if (method.length === 0) throw fail("http1_bad_method", "serialize: an empty method");
    put(method, TCHAR, "http1_bad_method", "method", method);
    raw(" ");
    if (target.length === 0) throw fail("http1_bad_target", "serialize: an empty request target");
    put(target, TARGET_BYTE, "http1_bad_target", "the request target");
    raw(" ");
    raw(version(v));
    crlf();
    fields(headers);
  } catch (e) {
    at = 0;
    throw e;
  }
  return finish();
}

/** `version SP status SP reason CRLF`, the fields, CRLF. Throws Http1Error. */
export function serializeResponseHead(h: ResponseHeadInit): Uint8Array {
  return responseHeadBytes(h.status, h.reason ?? "", h.version, h.headers);
}

/** serializeResponseHead without an init object (the proxy writes one per answer). */
export function responseHeadBytes(status: number, reason: string, v: HttpVersion | undefined, headers: Iterable<Header>): Uint8Array {
  at = 0;
  try {
    raw(version(v));
    if (!Number.isInteger(status) || status < 100 || status > 599) throw fail("http1_bad_status", `serialize: status ${status} is outside 100..599`);
    raw(" ");
    raw(STATUS_TEXT[status - 100]!);
    raw(" ");
    put(reason, VALUE_BYTE, "http1_bad_status", "the reason phrase");
    crlf();
    fields(headers);
  } catch (e) {
    at = 0;
    throw e;
  }
  return finish();
}

const CRLF = Uint8Array.of(13, 10);
const EMPTY = new Uint8Array(0);

/** The size line of a chunk of `size` bytes (`hex CRLF`); the data and a CRLF follow it. */
export function chunkSizeLine(size: number): Uint8Array {
  if (!Number.isSafeInteger(size) || size <= 0) throw fail("http1_bad_chunk_size", `serialize: a chunk of ${size} bytes`);
  const hex = size.toString(16);
  const out = new Uint8Array(hex.length + 2);
  for (let i = 0; i < hex.length; i++) out[i] = hex.charCodeAt(i);
  out[hex.length] = 13;
  out[hex.length + 1] = 10;
  return out;
}

/** What follows a chunk's data. */
export function chunkDataEnd(): Uint8Array {
  return CRLF.slice();
}

/**
 * `bytes` as one chunk (size line, data, CRLF), copied; empty for empty `bytes` (a chunk of size 0
 * would end the body: that is lastChunk()).
 */
export function encodeChunk(bytes: Uint8Array): Uint8Array {
  if (bytes.length === 0) return EMPTY;
  const head = chunkSizeLine(bytes.length);
  const out = new Uint8Array(head.length + bytes.length + 2);
  out.set(head, 0);
  out.set(bytes, head.length);
  out[out.length - 2] = 13;
  out[out.length - 1] = 10;
  return out;
}

/** The last chunk and the trailer section: `0 CRLF`, the trailer fields, CRLF. Throws Http1Error. */
export function lastChunk(trailers: Iterable<Header> = []): Uint8Array {
  at = 0;
  try {
    raw("0");
    crlf();
    fields(trailers);
  } catch (e) {
    at = 0;
    throw e;
  }
  return finish();
}

/** Reason phrases of the statuses tidegate answers with itself (RFC 9110 section 15). */
const REASONS: Readonly<Record<number, string>> = Object.freeze({ 200: "OK", 400: "Bad Request", 403: "Forbidden", 413: "Content Too Large", 421: "Misdirected Request", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout" });

/**
 * A whole response tidegate answers itself: `body` with its Content-Type and Content-Length, and
 * `Connection: close` unless `keepAlive`.
 */
export function wholeResponse(status: number, contentType: string, body: Uint8Array, keepAlive: boolean): Uint8Array {
  const head = serializeResponseHead({ status, reason: REASONS[status] ?? "Error", headers: [["content-type", contentType], ["content-length", String(body.length)], ...(keepAlive ? [] : [["connection", "close"] as Header])] });
  const out = new Uint8Array(head.length + body.length);
  out.set(head);
  out.set(body, head.length);
  return out;
}

/** A refusal tidegate answers itself: `status`, the body `tidegate: REASON` as text/plain, and `Connection: close`. */
export function refusalResponse(status: number, reason: string): Uint8Array {
  return wholeResponse(status, "text/plain", new TextEncoder().encode(`tidegate: ${reason}\n`), false);
}
