/**
 * The character walk shared by SPIFFE IDs, trust domains and patterns (internal; not re-exported).
 *
 * SPIFFE-ID standard (https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md):
 * - 2.1 trust domain: `[a-z0-9._-]`, non-empty, at most 255 bytes; no port, no userinfo.
 * - 2.2 path: segments of `[a-zA-Z0-9._-]`; no empty, "." or ".." segment; no trailing slash;
 *   no percent-encoding.
 * - 2.3 query and fragment components are not allowed.
 * - 2.5 the whole ID is at most 2048 bytes.
 *
 * Precedence: the walk goes left to right and the first character that is not allowed where it
 * stands decides the code. A '?' is `spiffeid_query`, '#' is `spiffeid_fragment` and '%' is
 * `spiffeid_percent_encoding`, wherever they are; in the trust domain '@' is `spiffeid_userinfo`
 * and ':' is `spiffeid_port` (or `spiffeid_userinfo` when an '@' follows in the authority, as in
 * "user:pw@host"); any other bad character is `spiffeid_bad_trust_domain_char` or
 * `spiffeid_bad_path_segment_char`. Segment rules (empty, dot, trailing slash) are checked when a
 * segment ends, so they come after bad characters inside that segment.
 */
import { SpiffeIdError, charAt, quote } from "./errors.ts";

export const SCHEME = "spiffe://";
export const MAX_TRUST_DOMAIN_BYTES = 255;
export const MAX_ID_BYTES = 2048;

export function isTrustDomainChar(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x5f || c === 0x2d;
}

export function isPathSegmentChar(c: number): boolean {
  return isTrustDomainChar(c) || (c >= 0x41 && c <= 0x5a);
}

/** UTF-8 length of `text` (lone surrogates count 3, as TextEncoder writes U+FFFD for them). */
export function utf8Length(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

/** The errors any position after the scheme can raise, or null for an ordinary bad character. */
function urlPartError(subject: string, text: string, pos: number): SpiffeIdError | null {
  switch (text.charCodeAt(pos)) {
    case 0x3f:
      return new SpiffeIdError("spiffeid_query", `spiffeid: ${subject} has a query ("?" at ${pos})`);
    case 0x23:
      return new SpiffeIdError("spiffeid_fragment", `spiffeid: ${subject} has a fragment ("#" at ${pos})`);
    case 0x25:
      return new SpiffeIdError(
        "spiffeid_percent_encoding",
        `spiffeid: ${subject} has percent-encoding ("%" at ${pos})`,
      );
    default:
      return null;
  }
}

/**
 * Walks the trust domain of `text` from `start` to the first '/' (or the end) and returns where
 * it ends. Throws for a bad character, an empty trust domain or one over 255 bytes.
 */
export function walkTrustDomain(subject: string, text: string, start: number): number {
  let i = start;
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x2f) break;
    if (isTrustDomainChar(c)) continue;
    const part = urlPartError(subject, text, i);
    if (part) throw part;
    if (c === 0x40 || (c === 0x3a && hasAtInAuthority(text, i))) {
      throw new SpiffeIdError("spiffeid_userinfo", `spiffeid: ${subject} has userinfo (${quote(charAt(text, i))} at ${i})`);
    }
    if (c === 0x3a) throw new SpiffeIdError("spiffeid_port", `spiffeid: ${subject} has a port (":" at ${i})`);
    throw new SpiffeIdError(
      "spiffeid_bad_trust_domain_char",
      `spiffeid: ${subject} has an invalid trust domain character ${quote(charAt(text, i))} at ${i}`,
    );
  }
  if (i === start) {
    throw new SpiffeIdError("spiffeid_missing_trust_domain", `spiffeid: ${subject} has no trust domain`);
  }
  if (i - start > MAX_TRUST_DOMAIN_BYTES) {
    throw new SpiffeIdError(
      "spiffeid_trust_domain_too_long",
      `spiffeid: ${subject} has a trust domain of ${i - start} bytes, more than ${MAX_TRUST_DOMAIN_BYTES}`,
    );
  }
  return i;
}

function hasAtInAuthority(text: string, from: number): boolean {
  for (let i = from; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x40) return true;
    if (c === 0x2f || c === 0x3f || c === 0x23) return false;
  }
  return false;
}

/**
 * Checks one finished segment `text[from, to)`; `last` says whether the path ends there. With
 * `pattern`, "*" (any one segment) and a last "**" (any rest) are allowed; any other use of '*'
 * is `spiffeid_bad_pattern`.
 */
function checkSegment(subject: string, text: string, from: number, to: number, last: boolean, pattern: boolean): void {
  const seg = text.slice(from, to);
  if (seg === "") {
    if (last) throw new SpiffeIdError("spiffeid_trailing_slash", `spiffeid: ${subject} has a trailing slash`);
    throw new SpiffeIdError("spiffeid_empty_segment", `spiffeid: ${subject} has an empty segment at ${from}`);
  }
  if (seg === "." || seg === "..") {
    throw new SpiffeIdError("spiffeid_dot_segment", `spiffeid: ${subject} has a ${quote(seg)} segment at ${from}`);
  }
  if (!pattern || !seg.includes("*") || seg === "*" || (seg === "**" && last)) return;
  const why = seg === "**" ? `"**" must be the last segment` : `"*" must be a whole segment`;
  throw new SpiffeIdError("spiffeid_bad_pattern", `spiffeid: ${subject} has the segment ${quote(seg)} at ${from}: ${why}`);
}

/**
 * Walks the path `text[start..]`, which is empty or starts with '/' (the caller ensures it).
 * Throws the first rule broken, reading left to right.
 */
export function walkPath(subject: string, text: string, start: number, pattern = false): void {
  if (start >= text.length) return;
  let segStart = start + 1;
  for (let i = segStart; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x2f) {
      checkSegment(subject, text, segStart, i, false, pattern);
      segStart = i + 1;
      continue;
    }
    if (isPathSegmentChar(c) || (pattern && c === 0x2a)) continue;
    const part = urlPartError(subject, text, i);
    if (part) throw part;
    throw new SpiffeIdError(
      "spiffeid_bad_path_segment_char",
      `spiffeid: ${subject} has an invalid path segment character ${quote(charAt(text, i))} at ${i}`,
    );
  }
  checkSegment(subject, text, segStart, text.length, true, pattern);
}

/** Checks a single path segment given alone (so '/' is a bad character in it). */
export function walkSegment(subject: string, seg: string): void {
  for (let i = 0; i < seg.length; i++) {
    const c = seg.charCodeAt(i);
    if (isPathSegmentChar(c)) continue;
    const part = urlPartError(subject, seg, i);
    if (part) throw part;
    throw new SpiffeIdError(
      "spiffeid_bad_path_segment_char",
      `spiffeid: ${subject} has an invalid path segment character ${quote(charAt(seg, i))} at ${i}`,
    );
  }
  checkSegment(subject, seg, 0, seg.length, false, false);
}

/**
 * The common start of an ID or pattern: not empty, the exact lowercase scheme, at most 2048
 * bytes (checked before the walk, so oversized input costs no more work), and a valid trust
 * domain. Returns the trust domain's name and where the path starts.
 */
export function walkPrefix(
  subject: string,
  text: string,
  noun = "SPIFFE ID",
): { trustDomain: string; pathStart: number } {
  if (text === "") throw new SpiffeIdError("spiffeid_empty", `spiffeid: the ${noun} is empty`);
  if (!text.startsWith(SCHEME)) {
    throw new SpiffeIdError("spiffeid_wrong_scheme", `spiffeid: ${subject} does not start with "spiffe://"`);
  }
  if (text.length > MAX_ID_BYTES || utf8Length(text) > MAX_ID_BYTES) {
    throw new SpiffeIdError("spiffeid_too_long", `spiffeid: ${subject} is more than ${MAX_ID_BYTES} bytes long`);
  }
  const end = walkTrustDomain(subject, text, SCHEME.length);
  return { trustDomain: text.slice(SCHEME.length, end), pathStart: end };
}
