/**
 * Request lines and status lines (RFC 9112 sections 3 and 4), read from `b[from, to)` (the line
 * without its CRLF).
 *
 * Request line: `method SP request-target SP HTTP-version`, single spaces. The method is a token
 * (RFC 9110 section 9.1); the target is visible ASCII without "#", in the form its method takes
 * (RFC 9112 section 3.2): origin-form "/..."; absolute-form with the http or https scheme;
 * authority-form "host:port" with CONNECT only; asterisk-form "*" with OPTIONS only.
 *
 * Status line: `HTTP-version SP 3DIGIT SP reason-phrase`, the status 100..599, the reason
 * HTAB / SP / VCHAR / obs-text (an empty reason may also drop its SP). The version is exactly
 * HTTP/1.1 or HTTP/1.0 in both. The line is `text.bytes[from, to)`, without its CRLF.
 */
import { quote } from "../errors.ts";
import { parseAuthority, type Authority } from "./authority.ts";
import { byteName, CR, latin1, SP, TARGET_BYTE, TCHAR, VALUE_BYTE, type HeadText } from "./bytes.ts";
import { fail } from "./errors.ts";
import type { HttpVersion, RequestHead } from "./types.ts";

export interface RequestLine {
  readonly method: string;
  readonly target: string;
  readonly form: RequestHead["form"];
  /** The target's authority (absolute-form, authority-form), else null. */
  readonly authority: Authority | null;
  readonly version: HttpVersion;
}

export interface StatusLine {
  readonly version: HttpVersion;
  readonly status: number;
  readonly reason: string;
}

const PREFIX = [72, 84, 84, 80, 47, 49, 46]; // "HTTP/1."

/** The version at `b[at, at + 8)`, or null. */
function versionAt(b: Uint8Array, at: number, to: number): HttpVersion | null {
  if (to - at < 8) return null;
  for (let k = 0; k < 7; k++) if (b[at + k] !== PREFIX[k]) return null;
  const minor = b[at + 7];
  return minor === 0x31 ? "HTTP/1.1" : minor === 0x30 ? "HTTP/1.0" : null;
}

function badByte(code: "http1_bad_method" | "http1_bad_target", c: number, where: string) {
  if (c === CR) return fail("http1_bad_line_ending", `a CR not followed by LF in the ${where}`);
  return fail(code, `${byteName(c)} in the ${where}`);
}

function targetForm(method: string, target: string): Pick<RequestLine, "form" | "authority"> {
  if (method === "CONNECT") {
    if (target.includes("/") || target === "*") throw fail("http1_bad_target", "CONNECT takes an authority-form target (host:port)");
    const authority = parseAuthority(target, "the CONNECT target");
    if (authority.port === null) throw fail("http1_bad_target", `the CONNECT target ${quote(target)} has no port`);
    return { form: "authority", authority };
  }
  if (target.charCodeAt(0) === 0x2f) return { form: "origin", authority: null };
  if (target === "*") {
    if (method !== "OPTIONS") throw fail("http1_bad_target", `asterisk-form ("*") with ${quote(method)}: only OPTIONS takes it`);
    return { form: "asterisk", authority: null };
  }
  const scheme = target.slice(0, 8).toLowerCase();
  const skip = scheme.startsWith("http://") ? 7 : scheme === "https://" ? 8 : 0;
  if (skip === 0) throw fail("http1_bad_target", `a target that is not origin-form ("/..."), http(s) absolute-form or asterisk-form, with ${quote(method)}`);
  const rest = target.slice(skip);
  const stop = rest.search(/[/?]/);
  return { form: "absolute", authority: parseAuthority(stop < 0 ? rest : rest.slice(0, stop), "the request target") };
}

export function parseRequestLine(text: HeadText, from: number, to: number): RequestLine {
  const b = text.bytes;
  let i = from;
  while (i < to && TCHAR[b[i] ?? 0] === 1) i++;
  if (i === from) {
    if (b[from] === SP) throw fail("http1_bad_start_line", "a request line starting with a space");
    throw badByte("http1_bad_method", b[from] ?? 0, "method");
  }
  if (i === to) throw fail("http1_bad_start_line", "a request line with only a method");
  if (b[i] !== SP) throw badByte("http1_bad_method", b[i] ?? 0, "method");
  const method = text.slice(from, i);
  const t = ++i;
  while (i < to && TARGET_BYTE[b[i] ?? 0] === 1) i++;
  if (i === t) {
    if (t === to) throw fail("http1_bad_start_line", "a request line without a target");
    if (b[t] === SP) throw fail("http1_bad_start_line", "two spaces after the method");
    throw badByte("http1_bad_target", b[t] ?? 0, "request target");
  }
  if (i === to) throw fail("http1_bad_version", "a request line without a version (HTTP/0.9 is refused)");
  if (b[i] !== SP) throw badByte("http1_bad_target", b[i] ?? 0, "request target");
  const target = text.slice(t, i);
  const v = i + 1;
  const version = versionAt(b, v, to);
  if (version === null) {
    if (b[v] === SP) throw fail("http1_bad_start_line", "two spaces before the version");
    throw fail("http1_bad_version", `version ${quote(latin1(b, v, Math.min(to, v + 16)))}: want HTTP/1.1 or HTTP/1.0`);
  }
  if (to - v > 8) throw fail("http1_bad_start_line", "bytes after the version in the request line");
  const { form, authority } = targetForm(method, target);
  return { method, target, form, authority, version };
}

export function parseStatusLine(text: HeadText, from: number, to: number): StatusLine {
  const b = text.bytes;
  const version = versionAt(b, from, to);
  if (version === null) throw fail("http1_bad_version", `status line version ${quote(latin1(b, from, Math.min(to, from + 16)))}: want HTTP/1.1 or HTTP/1.0`);
  if (to - from < 12 || b[from + 8] !== SP) throw fail("http1_bad_start_line", "a status line without a space and a three-digit status after the version");
  const d0 = (b[from + 9] ?? 0) - 48;
  const d1 = (b[from + 10] ?? 0) - 48;
  const d2 = (b[from + 11] ?? 0) - 48;
  if (d0 < 0 || d0 > 9 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9 || (to > from + 12 && b[from + 12] !== SP)) {
    throw fail("http1_bad_status", `status ${quote(latin1(b, from + 9, Math.min(to, from + 13)))}: want three digits then a space`);
  }
  const status = d0 * 100 + d1 * 10 + d2;
  if (status < 100 || status > 599) throw fail("http1_bad_status", `status ${status} is outside 100..599`);
  const r = Math.min(to, from + 13);
  for (let i = r; i < to; i++) {
    const c = b[i] ?? 0;
    if (VALUE_BYTE[c] !== 1) {
      if (c === CR) throw fail("http1_bad_line_ending", "a CR not followed by LF in the reason phrase");
      throw fail("http1_bad_status", `${byteName(c)} in the reason phrase`);
    }
  }
  return { version, status, reason: text.slice(r, to) };
}
