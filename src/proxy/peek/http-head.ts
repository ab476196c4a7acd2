/**
 * The head of an HTTP/1.1 or HTTP/1.0 request (RFC 9112), read for the host it asks for.
 *
 * Accepted: `method SP request-target SP HTTP/1.1 CRLF` (or HTTP/1.0), each single SP, the method
 * a token (RFC 9110 section 5.6.2); header lines `name ":" OWS value OWS CRLF`; an empty line.
 * request-target (RFC 9112 section 3.2): origin-form ("/..."); absolute-form with the http scheme
 * only (a proxy request); authority-form ("host:port") with CONNECT only; asterisk-form ("*") with
 * OPTIONS only. Target bytes are visible ASCII, "#" excepted (no fragment).
 *
 * The host: the Host header's (RFC 9110 section 7.2: uri-host [":" port]; IPv6 in brackets; an IP
 * literal gives host null); for absolute-form and CONNECT the target's authority, which wins (RFC
 * 9112 section 3.2.2), and a Host that disagrees with it is refused. Names are lowercase without
 * their trailing dot (normalizeServerName); ports 1..65535 without leading zeros.
 *
 * Refused, by code:
 * - peek_http_malformed: a request line that is not the above; another version (HTTP/2's preface
 *   "PRI * HTTP/2.0" too); a header line without a colon; a control byte other than HTAB in a value.
 * - peek_http_smuggling (what servers read differently, RFC 9112 section 11.2): a bare LF line
 *   ending, a CR not followed by LF (a CR inside a value), a NUL in a value, a line starting with
 *   whitespace (obsolete line folding, section 5.2, or whitespace before the first header), a
 *   header name that is not a token, whitespace before the colon (section 5.1), Content-Length and
 *   Transfer-Encoding together (section 6.1), Content-Length values that differ or are not decimal
 *   (RFC 9110 section 8.6), Transfer-Encoding in HTTP/1.0, or one whose last coding is not chunked
 *   or with chunked twice (RFC 9112 section 6.3), two Host headers.
 * - peek_http_bad_host: no Host in HTTP/1.1 (RFC 9112 section 3.2); an empty or invalid host or
 *   port; userinfo in the target (RFC 9110 section 4.2.4); CONNECT without a port; a disagreeing Host.
 * - peek_too_large: a head over MAX_PEEK_BYTES, a line over 8192 bytes (its CRLF not counted),
 *   more than 100 header lines.
 *
 * On a prefix: null ("need more") while everything present fits a valid head; the error as soon
 * as something present does not. Only the values of Host, Content-Length and Transfer-Encoding
 * appear in messages: any other header may carry a secret.
 */
import { quote } from "../../errors.ts";
import { MAX_PEEK_BYTES, PeekError, type PeekErrorCode } from "./errors.ts";
import { parseAuthority, targetForm, type Authority, type RequestLine } from "./http-authority.ts";

export interface HttpHead {
  readonly kind: "http";
  readonly method: string;
  /** As sent. */
  readonly target: string;
  /** Lowercase, no trailing dot; null for an IP literal, or an HTTP/1.0 request without Host. */
  readonly host: string | null;
  /** The port written with the host, null when none is (the scheme's default applies). */
  readonly hostPort: number | null;
  readonly version: "HTTP/1.1" | "HTTP/1.0";
  /** Bytes from the request line up to and including the CRLF CRLF that ends the head. */
  readonly headLength: number;
}

export const MAX_LINE = 8192;
export const MAX_HEADERS = 100;

const CR = 13;
const LF = 10;
const SP = 32;
const HTAB = 9;
const COLON = 58;
const HTTP_PORT = 80;

/** RFC 9110 section 5.6.2: "!#$%&'*+-.^_`|~", digits, letters. */
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TCHAR[c.charCodeAt(0)] = 1;

function isTchar(c: number | undefined): boolean {
  return c !== undefined && c < 128 && TCHAR[c] === 1;
}

/** Visible ASCII but "#": a request-target carries no fragment (RFC 9112 section 3.2). */
function isTargetByte(c: number): boolean {
  return c > SP && c < 0x7f && c !== 0x23;
}

function fail(code: PeekErrorCode, why: string, cause?: unknown): PeekError {
  return new PeekError(code, `peek: http: ${why}`, cause === undefined ? undefined : { cause });
}

function latin1(b: Uint8Array, from: number, to: number): string {
  let s = "";
  for (let i = from; i < to; i++) s += String.fromCharCode(b[i] ?? 0);
  return s;
}

function byteName(c: number): string {
  return `byte 0x${c.toString(16).padStart(2, "0")}`;
}

/** `s` without leading and trailing SP and HTAB (OWS, RFC 9110 section 5.6.3). */
function trimOws(s: string): string {
  let a = 0;
  let z = s.length;
  while (a < z && (s.charCodeAt(a) === SP || s.charCodeAt(a) === HTAB)) a++;
  while (z > a && (s.charCodeAt(z - 1) === SP || s.charCodeAt(z - 1) === HTAB)) z--;
  return s.slice(a, z);
}

const VERSION = "HTTP/1.";

/**
 * A line as far as it is present: `b[from, to)`, `complete` once its CRLF is there (`to` then at
 * its CR). A line's parser runs as more of it arrives: it yields while every byte present fits,
 * and resumes where it stopped, so each byte is looked at once however the line is split.
 */
interface Line {
  b: Uint8Array;
  from: number;
  to: number;
  complete: boolean;
}

/** Parks a parser that reached `line.to`: it waits for more, or throws when the line is whole. */
type Wait<T> = Generator<void, T, void>;

function* more(line: Line, what: string): Wait<void> {
  if (line.complete) throw fail("peek_http_malformed", `a request line without ${what}`);
  yield;
}

/** The request line; returns only once it is complete. */
function* requestLine(l: Line): Wait<RequestLine> {
  const from = l.from;
  let i = from;
  for (;;) {
    while (i < l.to && isTchar(l.b[i])) i++;
    if (i < l.to) break;
    yield* more(l, "a target");
  }
  if (l.b[i] !== SP) throw fail("peek_http_malformed", `${byteName(l.b[i] ?? 0)} in the method`);
  const method = latin1(l.b, from, i);
  const targetFrom = ++i;
  for (;;) {
    while (i < l.to && isTargetByte(l.b[i] ?? 0)) i++;
    if (i < l.to) break;
    yield* more(l, "a version");
  }
  if (l.b[i] !== SP) throw fail("peek_http_malformed", `${byteName(l.b[i] ?? 0)} in the request target`);
  if (i === targetFrom) throw fail("peek_http_malformed", "an empty request target");
  const target = latin1(l.b, targetFrom, i);
  const { form, authority } = targetForm(method, target);
  const v = i + 1;
  for (let k = 0; ; ) {
    const { b, to } = l;
    for (; k < Math.min(to - v, VERSION.length + 1); k++) {
      const c = b[v + k];
      if (k < VERSION.length ? c !== VERSION.charCodeAt(k) : c !== 0x30 && c !== 0x31) {
        throw fail("peek_http_malformed", `version ${quote(latin1(b, v, Math.min(to, v + 16)))}: want HTTP/1.1 or HTTP/1.0`);
      }
    }
    if (to - v > VERSION.length + 1) throw fail("peek_http_malformed", "bytes after the version in the request line");
    if (to - v === VERSION.length + 1 && l.complete) break;
    yield* more(l, "a whole version");
  }
  return { method, target, form, authority, version: l.b[l.to - 1] === 0x31 ? "HTTP/1.1" : "HTTP/1.0" };
}

/** The header fields that matter so far. */
interface Fields {
  host: Authority | null;
  contentLength: string | null;
  codings: string[] | null;
}

/** The fields whose values are read; every other value is only checked byte by byte. */
const FRAMING = new Set(["host", "content-length", "transfer-encoding"]);

function applyField(name: string, value: string, f: Fields, line: RequestLine): void {
  if (name === "host") {
    if (f.host !== null) throw fail("peek_http_smuggling", "two Host headers");
    const h = parseAuthority(value, "the Host header");
    const a = line.authority;
    const agrees =
      a === null ||
      (a.key === h.key && (line.form === "authority" ? h.port === null || h.port === a.port : (h.port ?? HTTP_PORT) === (a.port ?? HTTP_PORT)));
    if (!agrees) throw fail("peek_http_bad_host", `the Host header ${quote(value)} disagrees with the request target's authority`);
    f.host = h;
  } else if (name === "content-length") {
    for (const part of value.split(",")) {
      const n = trimOws(part);
      if (!/^[0-9]+$/.test(n)) throw fail("peek_http_smuggling", `Content-Length ${quote(value)} is not a decimal number`);
      const canonical = n.replace(/^0+(?=.)/, "");
      if (f.contentLength !== null && f.contentLength !== canonical) throw fail("peek_http_smuggling", `Content-Length values differ (${quote(value)})`);
      f.contentLength = canonical;
    }
  } else {
    if (line.version === "HTTP/1.0") throw fail("peek_http_smuggling", "Transfer-Encoding in an HTTP/1.0 request");
    f.codings ??= [];
    for (const part of value.split(",")) {
      const coding = trimOws(part).toLowerCase();
      if (coding.length > 0) f.codings.push(coding);
    }
  }
  if (f.contentLength !== null && f.codings !== null) throw fail("peek_http_smuggling", "both Content-Length and Transfer-Encoding");
}

/** One header line (present only once `l.to > l.from`); returns only once it is complete. */
function* headerLine(l: Line, f: Fields, line: RequestLine): Wait<void> {
  const from = l.from;
  const first = l.b[from];
  if (first === SP || first === HTAB) throw fail("peek_http_smuggling", "a line starting with whitespace (obsolete line folding)");
  let i = from;
  for (;;) {
    while (i < l.to && isTchar(l.b[i])) i++;
    if (i < l.to) break;
    // Not repeated: a line of token characters alone may be a credential sent without its name.
    if (l.complete) throw fail("peek_http_malformed", `a header line (${l.to - from} bytes) has no colon`);
    yield;
  }
  const c = l.b[i] ?? 0;
  if (c === SP || c === HTAB) throw fail("peek_http_smuggling", `whitespace between header name ${quote(latin1(l.b, from, i))} and its colon`);
  if (c !== COLON || i === from) throw fail("peek_http_smuggling", `header name ${quote(latin1(l.b, from, i + 1))} is not a token`);
  const name = latin1(l.b, from, i).toLowerCase();
  for (let j = i + 1; ; ) {
    for (; j < l.to; j++) {
      const v = l.b[j] ?? 0;
      if (v === HTAB || (v >= SP && v !== 0x7f)) continue;
      if (v === 0) throw fail("peek_http_smuggling", `a NUL byte in the value of header ${quote(name)}`);
      throw fail("peek_http_malformed", `control ${byteName(v)} in the value of header ${quote(name)}`);
    }
    if (l.complete) break;
    yield;
  }
  if (FRAMING.has(name)) applyField(name, trimOws(latin1(l.b, i + 1, l.to)), f, line);
}

function finish(line: RequestLine, f: Fields, headLength: number): HttpHead {
  const codings = f.codings;
  if (codings !== null && (codings.at(-1) !== "chunked" || codings.indexOf("chunked") !== codings.length - 1)) {
    throw fail("peek_http_smuggling", `Transfer-Encoding ${quote(codings.join(", "))}: chunked must be the last coding, once`);
  }
  if (line.version === "HTTP/1.1" && f.host === null) throw fail("peek_http_bad_host", "an HTTP/1.1 request without a Host header");
  const at = line.authority ?? f.host;
  return Object.freeze({
    kind: "http",
    method: line.method,
    target: line.target,
    host: at?.name ?? null,
    hostPort: at?.port ?? null,
    version: line.version,
    headLength,
  });
}

/**
 * A request head read as its bytes arrive. `next` is given all the bytes so far, each time the
 * bytes of the call before and then more; it answers what parseHttpHead would on them, looking at
 * each byte once: the look for the current line's CRLF resumes where it stopped, the line's
 * parser resumes where it waited, and a complete line is never read again. After it returns a
 * head or throws, it is not called again (peek.ts keeps the answer).
 */
export class HttpHeadReader {
  /** Where the current line starts, and where the look for its CR stopped. */
  private from = 0;
  private scan = 0;
  private readonly current: Line = { b: new Uint8Array(0), from: 0, to: 0, complete: false };
  /** The request line's parser until it returns `line`, then the current header line's once some of it is present. */
  private request: Wait<RequestLine> | null = null;
  private header: Wait<void> | null = null;
  private line: RequestLine | null = null;
  private readonly fields: Fields = { host: null, contentLength: null, codings: null };
  private count = 0;

  next(bytes: Uint8Array): HttpHead | null {
    const limit = Math.min(bytes.length, MAX_PEEK_BYTES);
    const l = this.current;
    l.b = bytes;
    for (;;) {
      const end = this.lineEnd(bytes, limit);
      if (this.line !== null && end === this.from) return finish(this.line, this.fields, end + 2);
      l.from = this.from;
      l.to = end < 0 ? cutEnd(bytes, this.from, limit) : end;
      l.complete = end >= 0;
      if (this.line === null) {
        this.request ??= requestLine(l);
        const step = this.request.next();
        if (step.done) this.line = step.value;
      } else if (l.to > l.from) {
        if (this.header === null) {
          if (++this.count > MAX_HEADERS) throw fail("peek_too_large", `more than ${MAX_HEADERS} header lines`);
          this.header = headerLine(l, this.fields, this.line);
        }
        this.header.next();
      }
      if (end < 0) {
        if (bytes.length >= MAX_PEEK_BYTES) throw fail("peek_too_large", `a request head over ${MAX_PEEK_BYTES} bytes`);
        return null;
      }
      // A complete line's parser has returned (it never waits once `complete`): on to the next.
      this.from = this.scan = end + 2;
      this.header = null;
    }
  }

  /**
   * The index of the CR that ends the current line, or -1 when `limit` comes first (a CR as the
   * last byte waits for its LF). Throws on a bare CR or LF and on a line over MAX_LINE. Resumes
   * at `scan`: every byte before it is neither CR nor LF, within MAX_LINE of the line's start.
   */
  private lineEnd(b: Uint8Array, limit: number): number {
    const from = this.from;
    let i = this.scan;
    for (; i < limit; i++) {
      const c = b[i];
      if (c === CR) {
        if (i + 1 === limit) break;
        if (b[i + 1] !== LF) throw fail("peek_http_smuggling", "a CR not followed by LF");
        return i;
      }
      if (c === LF) throw fail("peek_http_smuggling", "a bare LF line ending");
      if (i - from >= MAX_LINE) throw fail("peek_too_large", `a line longer than ${MAX_LINE} bytes`);
    }
    this.scan = i;
    return -1;
  }
}

/** Where a line cut short by `limit` ends, leaving out a last CR that waits for its LF. */
function cutEnd(b: Uint8Array, from: number, limit: number): number {
  return limit > from && b[limit - 1] === CR ? limit - 1 : limit;
}

/**
 * The request head at the start of `bytes` (which start with an uppercase letter), or null while
 * more bytes are needed. Throws PeekError (see the module comment).
 */
export function parseHttpHead(bytes: Uint8Array): HttpHead | null {
  return new HttpHeadReader().next(bytes);
}
