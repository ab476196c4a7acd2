/**
 * Host names: rule host patterns, and the server names of queries (TLS SNI, the HTTP Host).
 *
 * A name is ASCII, compared lowercase, without its one optional trailing dot. Labels follow
 * RFC 1123 section 2.1 (letters, digits and "-", not starting or ending with "-"), plus "_" (seen
 * in real service names), 1..63 octets each; the whole name is at most 253 octets (RFC 1035
 * section 2.3.4, less the root's length octets). An all-numeric last label is rejected: it looks
 * like an address, and no top-level domain is numeric (RFC 3696 section 2).
 *
 * Patterns: "example.com" matches that name only; "*.example.com" matches exactly one more label
 * (a.example.com; not example.com, not a.b.example.com), as TLS certificate wildcards (RFC 6125
 * section 6.4.3) and Cilium do; "**.example.com" matches one or more labels (a.example.com,
 * a.b.example.com; not example.com). A wildcard must be the whole first label and must stand over
 * at least two labels ("*.com" is too broad). Internationalized names are written as their A-label
 * ("xn--..."), IP addresses as `cidr:` rules, never as hosts.
 */
import { quote } from "../errors.ts";
import { PolicyError } from "./errors.ts";
import { tryParseIp } from "./address.ts";

export interface HostPattern {
  readonly kind: "exact" | "one" | "any";
  /** The name the pattern is anchored on (without the wildcard label). */
  readonly name: string;
  /** Canonical: lowercase, no trailing dot, the wildcard kept. */
  readonly text: string;
}

export const MAX_HOST_NAME = 253;
const MAX_LABEL = 63;
const DIGITS_LAST = "the last label is all digits: it looks like an address";

function badHost(text: string, why: string): PolicyError {
  return new PolicyError("policy_bad_host", `policy: host ${quote(text)}: ${why}`);
}

/** IPv4 or IPv6 text, or IPv6 text in brackets (RFC 3986 section 3.2.2: never IPv4 in brackets). */
function isIpLiteral(s: string): boolean {
  if (s.length > 1 && s.startsWith("[") && s.endsWith("]")) {
    const inner = s.slice(1, -1);
    return inner.includes(":") && tryParseIp(inner) !== null;
  }
  return tryParseIp(s) !== null;
}

/** Checked before lowercasing: toLowerCase maps some non-ASCII letters (U+212A) to ASCII. */
function checkAscii(text: string, s: string): void {
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) > 127) throw badHost(text, "non-ASCII characters: use the punycode A-label \"xn--...\"");
  }
}

/**
 * Null when `name` (lowercase, no trailing dot) is a valid name, else why not. Walks characters
 * once; allocates only on failure.
 */
function nameProblem(name: string): string | null {
  if (name.length === 0) return "empty";
  if (name.length > MAX_HOST_NAME) return `longer than ${MAX_HOST_NAME} characters`;
  let start = 0;
  let numeric = true;
  for (let i = 0; i <= name.length; i++) {
    const c = i < name.length ? name.charCodeAt(i) : 46;
    if (c === 46) {
      const len = i - start;
      if (len === 0) return "an empty label";
      if (len > MAX_LABEL) return `a label longer than ${MAX_LABEL} characters`;
      if (name.charCodeAt(start) === 45 || name.charCodeAt(i - 1) === 45) return "a label starts or ends with \"-\"";
      if (i === name.length && numeric) return DIGITS_LAST;
      start = i + 1;
      numeric = true;
      continue;
    }
    if (c >= 48 && c <= 57) continue;
    numeric = false;
    if ((c >= 97 && c <= 122) || c === 45 || c === 95) continue;
    return `character ${quote(name[i] ?? "")} is not allowed (letters, digits, "-", "_")`;
  }
  return null;
}

function stripDot(s: string): string {
  return s.endsWith(".") ? s.slice(0, -1) : s;
}

/** Throws PolicyError policy_bad_host (see the module comment for the syntax). */
export function parseHostPattern(text: string): HostPattern {
  const stripped = stripDot(text);
  if (isIpLiteral(stripped)) throw badHost(text, "an IP address: use cidr: for addresses");
  checkAscii(text, stripped);
  const lower = stripped.toLowerCase();
  let kind: HostPattern["kind"] = "exact";
  let name = lower;
  if (lower.startsWith("**.")) {
    kind = "any";
    name = lower.slice(3);
  } else if (lower.startsWith("*.")) {
    kind = "one";
    name = lower.slice(2);
  }
  if (name.includes("*")) {
    throw badHost(text, "a wildcard is allowed only as the whole first label (\"*.example.com\" or \"**.example.com\")");
  }
  const why = nameProblem(name);
  if (why !== null) throw badHost(text, why === DIGITS_LAST ? `${why}; use cidr: for addresses` : why);
  if (kind !== "exact" && !name.includes(".")) {
    throw badHost(text, `a wildcard directly over a single label (${quote(name)}) is too broad`);
  }
  if (kind !== "exact" && name.length > MAX_HOST_NAME - 2) {
    throw badHost(text, `no name of at most ${MAX_HOST_NAME} characters can match it`);
  }
  const canonical = kind === "exact" ? name : `${kind === "one" ? "*" : "**"}.${name}`;
  return Object.freeze({ kind, name, text: canonical });
}

function mayBeIpLiteral(s: string): boolean {
  const c = s.charCodeAt(s.length - 1);
  return (c >= 48 && c <= 57) || s.includes(":") || s.startsWith("[");
}

/**
 * The query-side name (SNI, or the Host header's host without its port): lowercase, one trailing
 * dot removed. Null when it is an IP literal (IPv4, IPv6 with or without brackets): an address is
 * no name. Throws policy_bad_host for anything else that is not a valid name.
 */
export function normalizeServerName(text: string): string | null {
  if (text.length > MAX_HOST_NAME + 2) throw badHost(text, `longer than ${MAX_HOST_NAME} characters`);
  const stripped = stripDot(text);
  if (stripped.length > 0 && mayBeIpLiteral(stripped) && isIpLiteral(stripped)) return null;
  checkAscii(text, stripped);
  const name = stripped.toLowerCase();
  const why = nameProblem(name);
  if (why !== null) throw badHost(text, why);
  return name;
}

/** `name` must come from normalizeServerName. Allocates nothing. */
export function hostMatches(p: HostPattern, name: string): boolean {
  const base = p.name;
  if (p.kind === "exact") return name === base;
  const dot = name.length - base.length - 1;
  if (dot < 1 || name.charCodeAt(dot) !== 46 || !name.endsWith(base)) return false;
  return p.kind === "any" || name.indexOf(".") === dot;
}

/** "a.b.c" -> "b.c"; a single label -> null. */
export function parentOf(name: string): string | null {
  const dot = name.indexOf(".");
  return dot < 0 ? null : name.slice(dot + 1);
}
