/**
 * HTTP matchers of rules: methods, path patterns, and the one spelling of a request path that
 * patterns are matched against.
 *
 * Request paths (`normalizeRequestPath`, on an origin-form request-target, RFC 9112 section 3.2.1):
 * the query is dropped; the path must start with "/"; percent-encoded unreserved characters
 * (RFC 3986 section 2.3) are decoded, every other percent-encoding is kept with uppercase hex
 * (RFC 3986 section 6.2.2.1), so one resource has one spelling. Refused rather than guessed (each
 * is read differently by different servers): "." and ".." segments, also when encoded ("%2e%2E")
 * or followed by parameters (";", below: "..;x"); an encoded "/" or "\" ("%2F", "%5C"); a raw
 * "\"; an empty segment ("//", or ";x" alone) except one trailing "/"; NUL and control characters,
 * raw or encoded; a bad percent-encoding; characters RFC 3986 does not allow raw in a path (space,
 * "\"", "<", ">", "^", "`", "{", "|", "}", "[", "]", "#", non-ASCII); more than 8192 characters.
 *
 * Parameters: servers such as Tomcat, Jetty and Spring drop what follows a raw ";" in each segment
 * before routing ("/admin;x/users" is their "/admin/users", "/public/..;/admin" their "/admin").
 * So patterns are matched against each segment up to its first ";" (a deny of "/admin/**" holds
 * for "/admin;x/users"), and a pattern may not hold a ";" itself (it could never match). What goes
 * upstream, and into the log, is the path as sent.
 *
 * Path patterns (`parsePathPattern`) are written decoded and start with "/". A segment "*" matches
 * exactly one non-empty segment; a last segment "**" matches zero or more segments ("/v1/**"
 * matches "/v1", "/v1/", "/v1/a/b"); any other segment matches literally (a request segment's
 * parameters left out, above), case-sensitively, and
 * one trailing "/" is literal too ("/v1/" matches "/v1/", not "/v1"). Non-ASCII characters are
 * matched in their UTF-8 percent-encoded form. A reserved character a client sends encoded
 * ("%2C") stays encoded and so does not match a pattern's raw ",": they are different resources
 * (RFC 3986 section 2.2).
 */
import { quote } from "../errors.ts";
import { PolicyError } from "./errors.ts";

export const MAX_PATH_PATTERN = 2048;
export const MAX_REQUEST_PATH = 8192;

const METHOD = /^[A-Z][A-Z0-9_-]{0,31}$/;

/** Throws PolicyError policy_bad_method: methods are RFC 9110 tokens, case-sensitive (section 9.1). */
export function parseMethod(text: string): string {
  if (METHOD.test(text)) return text;
  const upper = text.toUpperCase();
  const hint = upper !== text && METHOD.test(upper) ? `; methods are case-sensitive: write ${upper}` : "";
  throw new PolicyError(
    "policy_bad_method",
    `policy: method ${quote(text)}: want an uppercase token [A-Z][A-Z0-9_-]{0,31}${hint}`,
  );
}

export interface PathPattern {
  readonly text: string;
  /** Literal segments (non-ASCII percent-encoded) and "*"; without the final "**". */
  readonly segments: readonly string[];
  /** True when the pattern ends in "**". */
  readonly rest: boolean;
}

/** 1 for characters allowed raw in a path segment (RFC 3986 pchar, less "%"), by ASCII code. */
const PCHAR = new Uint8Array(128);
/** 1 for RFC 3986 unreserved characters. */
const UNRESERVED = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  if (/[A-Za-z0-9._~-]/.test(ch)) UNRESERVED[c] = 1;
  if (UNRESERVED[c] === 1 || "!$&'()*+,;=:@".includes(ch)) PCHAR[c] = 1;
}

/** Names the path without its query or fragment: a query may carry a credential, and this message reaches the audit log. */
function badPath(text: string, why: string): PolicyError {
  const cut = text.search(/[?#]/);
  return new PolicyError("policy_bad_path", `policy: path ${quote(cut < 0 ? text : text.slice(0, cut))}${cut < 0 ? "" : " (query left out)"}: ${why}`);
}

function charProblem(c: number, ch: string): string {
  if (c < 0x20 || c === 0x7f) return "a control character";
  if (c === 0x20) return "a space";
  if (c === 0x5c) return "a backslash";
  if (c === 0x25) return "a \"%\" (write patterns decoded)";
  return `character ${quote(ch)} is not allowed`;
}

function encodeNonAscii(text: string, seg: string): string {
  let out = "";
  for (const ch of seg) {
    if (ch.charCodeAt(0) < 128) {
      out += ch;
      continue;
    }
    try {
      out += encodeURIComponent(ch);
    } catch {
      throw badPath(text, "a lone surrogate");
    }
  }
  return out;
}

/** Throws PolicyError policy_bad_path (see the module comment for the syntax). */
export function parsePathPattern(text: string): PathPattern {
  if (text.length > MAX_PATH_PATTERN) throw badPath(text, `longer than ${MAX_PATH_PATTERN} characters`);
  if (!text.startsWith("/")) throw badPath(text, "a pattern starts with \"/\"");
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c !== 0x3b && (c === 0x2f || (c < 128 && PCHAR[c] === 1) || c >= 128)) continue;
    if (c === 0x3f || c === 0x23) throw badPath(text, "a \"?\" or \"#\": patterns match the path only");
    if (c === 0x3b) throw badPath(text, "a \";\": patterns match each segment up to its parameters (\";...\"), so one with \";\" could never match");
    throw badPath(text, charProblem(c, text[i] ?? ""));
  }
  const parts = text.slice(1).split("/");
  const segments: string[] = [];
  let rest = false;
  for (let i = 0; i < parts.length; i++) {
    const seg = parts[i] ?? "";
    const last = i === parts.length - 1;
    if (seg === "**") {
      if (!last) throw badPath(text, "\"**\" is allowed only as the last segment");
      rest = true;
      continue;
    }
    if (seg === "" && !last) throw badPath(text, "an empty segment (\"//\")");
    if (seg === "." || seg === "..") throw badPath(text, "a \".\" or \"..\" segment");
    if (seg !== "*" && seg.includes("*")) throw badPath(text, "\"*\" must be a whole segment");
    segments.push(encodeNonAscii(text, seg));
  }
  return Object.freeze({ text, segments: Object.freeze(segments), rest });
}

/**
 * True when `p` matches `path` (from normalizeRequestPath), each segment of `path` up to its first
 * ";" (its parameters, see the module comment). Allocates nothing.
 */
export function pathMatches(p: PathPattern, path: string): boolean {
  if (path.charCodeAt(0) !== 0x2f) return false;
  const segs = p.segments;
  const params = path.indexOf(";") >= 0;
  let pos = 1;
  for (let i = 0; i < segs.length; i++) {
    if (pos > path.length) return false;
    let end = path.indexOf("/", pos);
    if (end < 0) end = path.length;
    let to = end;
    if (params) {
      const semi = path.indexOf(";", pos);
      if (semi >= 0 && semi < end) to = semi;
    }
    const want = segs[i] as string;
    if (want === "*") {
      if (to === pos) return false;
    } else if (to - pos !== want.length || !path.startsWith(want, pos)) {
      return false;
    }
    pos = end + 1;
  }
  return p.rest || pos === path.length + 1;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

const HEX = "0123456789ABCDEF";

/** Segment [from, to) of `target` with unreserved characters decoded; throws on the refusals. */
function decodeSegment(target: string, from: number, to: number): string {
  let out = "";
  for (let i = from; i < to; i++) {
    const c = target.charCodeAt(i);
    if (c !== 0x25) {
      out += target[i];
      continue;
    }
    const hi = hexValue(target.charCodeAt(i + 1));
    const lo = i + 2 < to ? hexValue(target.charCodeAt(i + 2)) : -1;
    if (hi < 0 || lo < 0) throw badPath(target, "a bad percent-encoding");
    const v = hi * 16 + lo;
    if (v === 0x2f || v === 0x5c) throw badPath(target, "an encoded \"/\" or \"\\\"");
    if (v < 0x20 || v === 0x7f) throw badPath(target, "an encoded control character");
    out += v < 128 && UNRESERVED[v] === 1 ? String.fromCharCode(v) : `%${HEX[hi]}${HEX[lo]}`;
    i += 2;
  }
  return out;
}

function isDotSegment(s: string, from: number, to: number): boolean {
  const n = to - from;
  return (n === 1 || n === 2) && s.charCodeAt(from) === 0x2e && (n === 1 || s.charCodeAt(from + 1) === 0x2e);
}

/** Segment [from, to) of `s` up to its first ";" (its parameters): the end of what names the resource. */
function nameEnd(s: string, from: number, to: number): number {
  const semi = s.indexOf(";", from);
  return semi >= 0 && semi < to ? semi : to;
}

/** The refusal, if any, of segment [from, to) of `s` by what it names (its parameters left out; `params`: `s` has a ";"); "" when none. */
function segmentProblem(s: string, from: number, to: number, params: boolean): string {
  const n = params ? nameEnd(s, from, to) : to;
  if (n === to) return isDotSegment(s, from, to) ? "a \".\" or \"..\" segment" : "";
  if (n === from) return "a segment of parameters alone (\";...\"), read as an empty one";
  return isDotSegment(s, from, n) ? "a \".\" or \"..\" segment with parameters (\"..;\"), read as \"..\"" : "";
}

/**
 * The path of the origin-form request-target `target` in its one spelling (see the module
 * comment). Throws PolicyError policy_bad_path. Without "%" in the path it returns the path
 * itself (no copy beyond dropping the query).
 */
export function normalizeRequestPath(target: string): string {
  const q = target.indexOf("?");
  const end = q < 0 ? target.length : q;
  if (end > MAX_REQUEST_PATH) throw badPath(target, `longer than ${MAX_REQUEST_PATH} characters`);
  if (target.charCodeAt(0) !== 0x2f) throw badPath(target, "a request path starts with \"/\"");
  let encoded = false;
  let params = false;
  for (let i = 0; i < end; i++) {
    const c = target.charCodeAt(i);
    if (c === 0x25) encoded = true;
    else if (c === 0x3b) params = true;
    else if (c !== 0x2f && (c >= 128 || PCHAR[c] !== 1)) {
      throw badPath(target, c >= 128 ? "a non-ASCII character" : charProblem(c, target[i] ?? ""));
    }
  }
  let out = "";
  let pos = 1;
  for (;;) {
    let stop = target.indexOf("/", pos);
    if (stop < 0 || stop > end) stop = end;
    if (stop === pos && stop !== end) throw badPath(target, "an empty segment (\"//\")");
    if (encoded) {
      const seg = decodeSegment(target, pos, stop);
      const problem = segmentProblem(seg, 0, seg.length, params);
      if (problem !== "") throw badPath(target, problem);
      out += `/${seg}`;
    } else {
      const problem = segmentProblem(target, pos, stop, params);
      if (problem !== "") throw badPath(target, problem);
    }
    if (stop === end) break;
    pos = stop + 1;
  }
  if (encoded) return out;
  return q < 0 ? target : target.slice(0, end);
}
