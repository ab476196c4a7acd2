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
import { tryParseIp } from "../../policy/address.ts";
import { PolicyError } from "../../policy/errors.ts";
import { normalizeServerName } from "../../policy/host-name.ts";
import { parsePort } from "../../policy/ports.ts";
import { MAX_PEEK_BYTES, PeekError, type PeekErrorCode } from "./errors.ts";

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

interface Authority {
  readonly name: string | null;
  /** What two authorities are compared by: the name, or the address's canonical text. */
  readonly key: string;
  readonly port: number | null;
}

/** `uri-host [":" port]` (RFC 3986 section 3.2), `where` naming it in messages. */
function parseAuthority(text: string, where: string): Authority {
  if (text.length === 0) throw fail("peek_http_bad_host", `${where}: an empty host`);
  if (text.includes("@")) throw fail("peek_http_bad_host", `${where}: userinfo ("user@host") is refused`);
  let host = text;
  let port: string | null = null;
  const close = text.charCodeAt(0) === 0x5b ? text.indexOf("]") : -1;
  const colon = text.indexOf(":", close + 1);
  if (colon >= 0) {
    host = text.slice(0, colon);
    port = text.slice(colon + 1);
  }
  if (text.charCodeAt(0) === 0x5b && (close < 0 || close !== host.length - 1)) {
    throw fail("peek_http_bad_host", `${where}: ${quote(text)}: want "[IPv6]" or "[IPv6]:port"`);
  }
  if (port !== null && port.includes(":")) throw fail("peek_http_bad_host", `${where}: ${quote(text)}: an IPv6 address goes in brackets`);
  let portNumber: number | null = null;
  let name: string | null;
  try {
    if (port !== null) portNumber = parsePort(port);
    name = normalizeServerName(host);
  } catch (e) {
    if (e instanceof PolicyError) throw fail("peek_http_bad_host", `${where}: ${quote(text)}: ${e.message}`, e);
    throw e;
  }
  const bare = host.replace(/^\[|\]$/g, "").replace(/\.$/, "");
  const key = name ?? tryParseIp(bare)?.text ?? host.toLowerCase();
  return { name, key, port: portNumber };
}

interface RequestLine {
  readonly method: string;
  readonly target: string;
  readonly form: "origin" | "absolute" | "authority" | "asterisk";
  readonly authority: Authority | null;
  readonly version: "HTTP/1.1" | "HTTP/1.0";
}

function targetForm(method: string, target: string): Pick<RequestLine, "form" | "authority"> {
  if (method === "CONNECT") {
    if (target.includes("/") || target === "*") throw fail("peek_http_malformed", "CONNECT takes an authority-form target (host:port)");
    const authority = parseAuthority(target, "the CONNECT target");
    if (authority.port === null) throw fail("peek_http_bad_host", `the CONNECT target ${quote(target)} has no port`);
    return { form: "authority", authority };
  }
  if (target.charCodeAt(0) === 0x2f) return { form: "origin", authority: null };
  if (target === "*") {
    if (method !== "OPTIONS") throw fail("peek_http_malformed", `asterisk-form ("*") with ${quote(method)}: only OPTIONS takes it`);
    return { form: "asterisk", authority: null };
  }
  if (target.slice(0, 7).toLowerCase() !== "http://") {
    throw fail("peek_http_malformed", `a request target that is not origin-form ("/..."), http absolute-form or asterisk-form, with ${quote(method)}`);
  }
  const rest = target.slice(7);
  const stop = rest.search(/[/?]/);
  return { form: "absolute", authority: parseAuthority(stop < 0 ? rest : rest.slice(0, stop), "the request target") };
}

const VERSION = "HTTP/1.";

/** The request line in `b[from, to)`; null when it is cut short (`complete` false) but fits so far. */
function parseRequestLine(b: Uint8Array, from: number, to: number, complete: boolean): RequestLine | null {
  const cut = (what: string) => {
    if (complete) throw fail("peek_http_malformed", `a request line without ${what}`);
    return null;
  };
  let i = from;
  while (i < to && isTchar(b[i])) i++;
  if (i === to) return cut("a target");
  if (b[i] !== SP) throw fail("peek_http_malformed", `${byteName(b[i] ?? 0)} in the method`);
  const method = latin1(b, from, i);
  const targetFrom = ++i;
  while (i < to && isTargetByte(b[i] ?? 0)) i++;
  if (i === to) return cut("a version");
  if (b[i] !== SP) throw fail("peek_http_malformed", `${byteName(b[i] ?? 0)} in the request target`);
  if (i === targetFrom) throw fail("peek_http_malformed", "an empty request target");
  const target = latin1(b, targetFrom, i);
  const { form, authority } = targetForm(method, target);
  const v = i + 1;
  for (let k = 0; k < Math.min(to - v, VERSION.length + 1); k++) {
    const c = b[v + k];
    if (k < VERSION.length ? c !== VERSION.charCodeAt(k) : c !== 0x30 && c !== 0x31) {
      throw fail("peek_http_malformed", `version ${quote(latin1(b, v, Math.min(to, v + 16)))}: want HTTP/1.1 or HTTP/1.0`);
    }
  }
  if (to - v > VERSION.length + 1) throw fail("peek_http_malformed", "bytes after the version in the request line");
  if (to - v < VERSION.length + 1) return cut("a whole version");
  return { method, target, form, authority, version: b[to - 1] === 0x31 ? "HTTP/1.1" : "HTTP/1.0" };
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

/** One header line in `b[from, to)`, `complete` false when it is cut short. */
function readHeaderLine(b: Uint8Array, from: number, to: number, complete: boolean, f: Fields, line: RequestLine): void {
  const first = b[from];
  if (first === SP || first === HTAB) throw fail("peek_http_smuggling", "a line starting with whitespace (obsolete line folding)");
  let i = from;
  while (i < to && isTchar(b[i])) i++;
  if (i === to) {
    if (complete) throw fail("peek_http_malformed", `header line ${quote(latin1(b, from, to))} has no colon`);
    return;
  }
  const c = b[i] ?? 0;
  if (c === SP || c === HTAB) throw fail("peek_http_smuggling", `whitespace between header name ${quote(latin1(b, from, i))} and its colon`);
  if (c !== COLON || i === from) throw fail("peek_http_smuggling", `header name ${quote(latin1(b, from, i + 1))} is not a token`);
  const name = latin1(b, from, i).toLowerCase();
  for (let j = i + 1; j < to; j++) {
    const v = b[j] ?? 0;
    if (v === HTAB || (v >= SP && v !== 0x7f)) continue;
    if (v === 0) throw fail("peek_http_smuggling", `a NUL byte in the value of header ${quote(name)}`);
    throw fail("peek_http_malformed", `control ${byteName(v)} in the value of header ${quote(name)}`);
  }
  if (complete && FRAMING.has(name)) applyField(name, trimOws(latin1(b, i + 1, to)), f, line);
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
 * The index of the CR that ends the line starting at `from`, or -1 when `limit` comes first (a
 * CR as the last byte waits for its LF). Throws on a bare CR or LF and on a line over MAX_LINE.
 */
function lineEnd(b: Uint8Array, from: number, limit: number): number {
  for (let i = from; i < limit; i++) {
    const c = b[i];
    if (c === CR) {
      if (i + 1 === limit) return -1;
      if (b[i + 1] !== LF) throw fail("peek_http_smuggling", "a CR not followed by LF");
      return i;
    }
    if (c === LF) throw fail("peek_http_smuggling", "a bare LF line ending");
    if (i - from >= MAX_LINE) throw fail("peek_too_large", `a line longer than ${MAX_LINE} bytes`);
  }
  return -1;
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
  const limit = Math.min(bytes.length, MAX_PEEK_BYTES);
  const needMore = (): null => {
    if (bytes.length >= MAX_PEEK_BYTES) throw fail("peek_too_large", `a request head over ${MAX_PEEK_BYTES} bytes`);
    return null;
  };
  let end = lineEnd(bytes, 0, limit);
  const line = parseRequestLine(bytes, 0, end < 0 ? cutEnd(bytes, 0, limit) : end, end >= 0);
  if (line === null || end < 0) return needMore();
  const fields: Fields = { host: null, contentLength: null, codings: null };
  let count = 0;
  for (let pos = end + 2; ; pos = end + 2) {
    end = lineEnd(bytes, pos, limit);
    if (end === pos) return finish(line, fields, end + 2);
    const to = end < 0 ? cutEnd(bytes, pos, limit) : end;
    if (to > pos) {
      if (++count > MAX_HEADERS) throw fail("peek_too_large", `more than ${MAX_HEADERS} header lines`);
      readHeaderLine(bytes, pos, to, end >= 0, fields, line);
    }
    if (end < 0) return needMore();
  }
}
