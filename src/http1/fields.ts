/**
 * Header and trailer lines (RFC 9112 section 5, RFC 9110 section 5): `name ":" OWS value OWS`,
 * the name a token right before the colon, the value field-vchar / SP / HTAB.
 *
 * Refused: a line starting with SP or HTAB (obs-fold, section 5.2), whitespace before the colon
 * (section 5.1), a name that is empty or not a token, a line without a colon, a CR, NUL, other
 * control byte or DEL in a value. In a head (not in trailers) the framing fields are read too:
 * Content-Length (a decimal number, or a list of one number repeated), Transfer-Encoding (exactly
 * one "chunked", never in HTTP/1.0), both together, Host (once), Connection and Upgrade (lists of
 * tokens).
 */
import { quote } from "../errors.ts";
import { asciiLower, byteName, COLON, CR, equalsLower, HTAB, latin1, SP, TCHAR, VALUE_BYTE, type HeadText } from "./bytes.ts";
import { fail } from "./errors.ts";
import { HeaderList, type Header } from "./headers.ts";
import type { FieldsMemo } from "./memo.ts";
import type { HeadScanner } from "./scan.ts";
import type { HttpVersion } from "./types.ts";

export interface Fields {
  readonly headers: HeaderList;
  readonly contentLength: number | null;
  readonly chunked: boolean;
  /** The Host value (trimmed), null when absent. */
  readonly host: string | null;
  readonly connection: readonly string[];
  readonly upgrade: readonly string[];
}

const NONE: readonly string[] = Object.freeze([]);

/** Elements of a comma-separated list (RFC 9110 section 5.6.1), empty ones dropped. */
function listElements(value: string, into: string[] | null, lower: boolean, name: string, slash: boolean): string[] {
  const out = into ?? [];
  let start = 0;
  for (let i = 0; i <= value.length; i++) {
    if (i < value.length && value.charCodeAt(i) !== 44) continue;
    let a = start;
    let z = i;
    while (a < z && (value.charCodeAt(a) === SP || value.charCodeAt(a) === HTAB)) a++;
    while (z > a && (value.charCodeAt(z - 1) === SP || value.charCodeAt(z - 1) === HTAB)) z--;
    start = i + 1;
    if (a === z) continue;
    for (let k = a; k < z; k++) {
      const c = value.charCodeAt(k);
      if (TCHAR[c] !== 1 && !(slash && c === 47 && k > a && k < z - 1)) throw fail("http1_bad_header_value", `a ${name} element that is not a token`);
    }
    const el = value.slice(a, z);
    out.push(lower ? asciiLower(el) : el);
  }
  return out;
}

/** A Content-Length value: 1*DIGIT, or such numbers separated by commas, all equal (and equal to `prior`). */
function contentLength(value: string, prior: number | null): number {
  let n = prior;
  let i = 0;
  const to = value.length;
  for (;;) {
    while (i < to && (value.charCodeAt(i) === SP || value.charCodeAt(i) === HTAB)) i++;
    const start = i;
    let v = 0;
    for (let c = value.charCodeAt(i); c >= 48 && c <= 57; c = value.charCodeAt(++i)) v = v * 10 + (c - 48);
    if (i === start) throw fail("http1_bad_content_length", `Content-Length ${quote(value)} is not a decimal number`);
    if (i - start > 16 || v > Number.MAX_SAFE_INTEGER) throw fail("http1_bad_content_length", `Content-Length ${quote(value)} is over 2^53 - 1`);
    if (n !== null && n !== v) throw fail("http1_differing_content_length", `Content-Length values differ (${quote(value)})`);
    n = v;
    while (i < to && (value.charCodeAt(i) === SP || value.charCodeAt(i) === HTAB)) i++;
    if (i === to) return v;
    if (value.charCodeAt(i) !== 44) throw fail("http1_bad_content_length", `Content-Length ${quote(value)} is not a decimal number`);
    i++;
  }
}

/** One header line `text.bytes[s, e)`, checked: [name, value]. */
function parseLine(text: HeadText, s: number, e: number): Header {
  const b = text.bytes;
  const c0 = b[s];
  if (c0 === SP || c0 === HTAB) throw fail("http1_obs_fold", "a line starting with whitespace (obsolete line folding)");
  let i = s;
  while (i < e && TCHAR[b[i] ?? 0] === 1) i++;
  // Not repeated: a line of token characters alone may be a credential sent without its name.
  if (i === e) throw fail("http1_bad_header_name", `a header line (${e - s} bytes) has no colon`);
  const c = b[i] ?? 0;
  if (c !== COLON) {
    if (c === SP || c === HTAB) throw fail("http1_space_before_colon", `whitespace between header name ${quote(latin1(b, s, i))} and its colon`);
    throw fail("http1_bad_header_name", `${byteName(c)} in a header name`);
  }
  if (i === s) throw fail("http1_bad_header_name", "an empty header name");
  let vs = i + 1;
  let ve = e;
  while (vs < ve && (b[vs] === SP || b[vs] === HTAB)) vs++;
  while (ve > vs && (b[ve - 1] === SP || b[ve - 1] === HTAB)) ve--;
  for (let j = vs; j < ve; j++) {
    const v = b[j] ?? 0;
    if (VALUE_BYTE[v] === 1) continue;
    const what = v === CR ? "a CR" : v === 0 ? "a NUL" : `control ${byteName(v)}`;
    throw fail("http1_bad_header_value", `${what} in the value of header ${quote(latin1(b, s, i))}`);
  }
  return [text.slice(s, i), text.slice(vs, ve)];
}

/** The framing fields seen so far in a head. */
interface Seen {
  cl: number | null;
  chunked: boolean;
  host: string | null;
  connection: string[] | null;
  upgrade: string[] | null;
}

/** Folds one field into `f` when it is a framing field (any case), refusing what conflicts. */
function applyField(name: string, value: string, version: HttpVersion, f: Seen): void {
  const n = name.length;
  if (n === 4 && equalsLower(name, "host")) {
    if (f.host !== null) throw fail("http1_duplicate_host", "two Host headers");
    f.host = value;
  } else if (n === 14 && equalsLower(name, "content-length")) {
    f.cl = contentLength(value, f.cl);
  } else if (n === 17 && equalsLower(name, "transfer-encoding")) {
    if (version === "HTTP/1.0") throw fail("http1_bad_transfer_encoding", "Transfer-Encoding in an HTTP/1.0 message");
    if (f.chunked) throw fail("http1_bad_transfer_encoding", "Transfer-Encoding twice");
    if (!equalsLower(value, "chunked")) throw fail("http1_bad_transfer_encoding", `Transfer-Encoding ${quote(value)}: only "chunked" alone is accepted`);
    f.chunked = true;
  } else if (n === 10 && equalsLower(name, "connection")) {
    f.connection = listElements(value, f.connection, true, "Connection", false);
  } else if (n === 7 && equalsLower(name, "upgrade")) {
    f.upgrade = listElements(value, f.upgrade, false, "Upgrade", true);
  }
  if (f.chunked && f.cl !== null) throw fail("http1_conflicting_framing", "both Content-Length and Transfer-Encoding");
}

/**
 * The fields on lines `first..sc.count-1` of the head `text`. `version` is null for trailers
 * (nothing but the syntax is checked then). `memo`: the previous head's, reused where lines
 * repeat, then pointed at `text.bytes`, which must be the parser's own copy.
 */
export function parseFields(text: HeadText, sc: HeadScanner, first: number, version: HttpVersion | null, memo: FieldsMemo | null = null): Fields {
  const b = text.bytes;
  const count = sc.count - first;
  const reuse = memo !== null && memo.fields !== null && memo.version === version && memo.headers.length === count;
  // While every line repeats the memo's, nothing is built; the first line that does not builds
  // the lists from the memo's lines so far.
  let same = reuse ? 0 : -1;
  const entries: Header[] = [];
  const starts: number[] = [];
  const lengths: number[] = [];
  for (let k = 0; k < count; k++) {
    const s = sc.lineStart(first + k);
    const e = sc.ends[first + k] ?? 0;
    const h = memo?.line(k, b, s, e) ?? null;
    if (h !== null && same === k) {
      same++;
      continue;
    }
    for (let j = entries.length; j < k; j++) {
      entries.push(memo?.headers[j] ?? ["", ""]);
      starts.push(sc.lineStart(first + j));
      lengths.push((sc.ends[first + j] ?? 0) - sc.lineStart(first + j));
    }
    entries.push(h ?? parseLine(text, s, e));
    starts.push(s);
    lengths.push(e - s);
  }
  if (same === count && memo?.fields) return memo.fields;
  const f: Seen = { cl: null, chunked: false, host: null, connection: null, upgrade: null };
  if (version !== null) for (const [name, value] of entries) applyField(name, value, version, f);
  const fields: Fields = {
    headers: new HeaderList(entries),
    contentLength: f.cl,
    chunked: f.chunked,
    host: f.host,
    connection: f.connection ?? NONE,
    upgrade: f.upgrade ?? NONE,
  };
  if (memo !== null) {
    memo.bytes = b;
    memo.starts = starts;
    memo.lengths = lengths;
    memo.headers = entries;
    memo.version = version;
    memo.fields = fields;
  }
  return fields;
}
