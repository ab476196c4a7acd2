/**
 * IP addresses and address ranges (CIDR blocks) as immutable values.
 *
 * Accepted address text:
 * - IPv4: exactly four decimal parts 0-255 separated by ".", no leading zeros ("010.0.0.1" is
 *   ambiguous: octal to inet_aton, decimal elsewhere), no shortened ("1.2.3") or hex forms.
 * - IPv6: RFC 4291 section 2.2 text: eight groups of 1-4 hex digits, at most one "::" standing for
 *   one or more zero groups, and optionally a trailing embedded IPv4 (same rules as above). Zone
 *   ids ("fe80::1%eth0") and brackets are rejected.
 * An IPv4-mapped IPv6 address (::ffff:0:0/96, RFC 4291 section 2.5.5.2) is the IPv4 address it
 * maps: connect6 on a dual-stack socket gives those, and an IPv4 rule must apply to them.
 *
 * Canonical text: IPv4 dotted quad without leading zeros; IPv6 as RFC 5952 section 4 (lowercase,
 * no leading zeros, the longest run of two or more zero groups compressed, the leftmost on a tie,
 * always hex, never mixed notation).
 */
import { quote } from "../errors.ts";
import { PolicyError } from "./errors.ts";

export interface IpAddress {
  readonly family: 4 | 6;
  /** The address as an unsigned integer of 32 or 128 bits. */
  readonly value: bigint;
  readonly text: string;
}

export interface Cidr {
  readonly family: 4 | 6;
  readonly first: bigint;
  readonly last: bigint;
  readonly prefix: number;
  readonly text: string;
}

/** The longest valid address text: six full groups and a full dotted quad. */
const MAX_ADDRESS_TEXT = 45;
const MAPPED_HI = 0xffffn;

export function familyBits(family: 4 | 6): number {
  return family === 4 ? 32 : 128;
}

function badAddress(text: string, why: string): PolicyError {
  return new PolicyError("policy_bad_address", `policy: ${quote(text)} is not an IP address: ${why}`);
}

/** The value of dotted-quad text `s[from, to)`, or -1 when it is not exactly a.b.c.d as above. */
function parseV4(s: string, from: number, to: number): number {
  let value = 0;
  let parts = 0;
  let i = from;
  while (parts < 4) {
    const start = i;
    let part = 0;
    while (i < to && i - start < 4) {
      const c = s.charCodeAt(i);
      if (c < 48 || c > 57) break;
      part = part * 10 + (c - 48);
      i++;
    }
    const digits = i - start;
    if (digits === 0 || digits > 3 || part > 255) return -1;
    if (digits > 1 && s.charCodeAt(start) === 48) return -1;
    value = value * 256 + part;
    parts++;
    if (parts < 4) {
      if (i >= to || s.charCodeAt(i) !== 46) return -1;
      i++;
    }
  }
  return i === to ? value : -1;
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/**
 * The groups of the IPv6 text `s[from, to)` appended to `out` (an embedded IPv4 counts as two),
 * or a reason it is not. `allowV4` says whether the last piece may be a dotted quad.
 */
function parseGroups(s: string, from: number, to: number, allowV4: boolean, out: number[]): string | null {
  if (from === to) return null;
  let i = from;
  for (;;) {
    let end = s.indexOf(":", i);
    if (end < 0 || end > to) end = to;
    if (end === i) return "an empty group";
    const dot = s.indexOf(".", i);
    if (dot >= 0 && dot < end) {
      if (!allowV4 || end !== to) return "an embedded IPv4 address is allowed only at the end";
      const v4 = parseV4(s, i, end);
      if (v4 < 0) return "the embedded IPv4 address is not a.b.c.d";
      out.push(Math.floor(v4 / 65536), v4 % 65536);
      return null;
    }
    if (end - i > 4) return "a group has more than 4 hex digits";
    let g = 0;
    for (let j = i; j < end; j++) {
      const d = hexDigit(s.charCodeAt(j));
      if (d < 0) return `unexpected character ${quote(s[j] ?? "")}`;
      g = g * 16 + d;
    }
    out.push(g);
    if (end === to) return null;
    i = end + 1;
    if (i === to) return "a trailing \":\"";
  }
}

/** The eight groups of IPv6 text, or why it is not IPv6 text. */
function parseV6(text: string): number[] | string {
  if (text.includes("%")) return "zone ids are not accepted";
  const gap = text.indexOf("::");
  const groups: number[] = [];
  if (gap < 0) {
    const why = parseGroups(text, 0, text.length, true, groups);
    if (why !== null) return why;
    return groups.length === 8 ? groups : `${groups.length} groups instead of 8 (and no "::")`;
  }
  if (text.indexOf("::", gap + 1) >= 0) return "more than one \"::\"";
  const head: number[] = [];
  const why = parseGroups(text, 0, gap, false, head) ?? parseGroups(text, gap + 2, text.length, true, groups);
  if (why !== null) return why;
  const zeros = 8 - head.length - groups.length;
  if (zeros < 1) return "\"::\" stands for no group: too many groups";
  return [...head, ...new Array<number>(zeros).fill(0), ...groups];
}

function formatV4(v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

/** RFC 5952 section 4 text of eight 16-bit groups. */
function formatV6(g: ArrayLike<number>): string {
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  let out = "";
  for (let i = 0; i < 8; i++) {
    if (i === bestAt) {
      out += "::";
      i += bestLen - 1;
      continue;
    }
    if (out !== "" && !out.endsWith(":")) out += ":";
    out += (g[i] ?? 0).toString(16);
  }
  return out;
}

function v4(value: number): IpAddress {
  return Object.freeze({ family: 4, value: BigInt(value), text: formatV4(value) });
}

function groupsToValue(g: ArrayLike<number>): bigint {
  const w = (i: number) => BigInt((((g[i] ?? 0) << 16) | (g[i + 1] ?? 0)) >>> 0);
  return (w(0) << 96n) | (w(2) << 64n) | (w(4) << 32n) | w(6);
}

function isMappedGroups(g: ArrayLike<number>): boolean {
  return g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff;
}

function fromGroups(g: ArrayLike<number>): IpAddress {
  if (isMappedGroups(g)) return v4(((g[6] ?? 0) * 65536) + (g[7] ?? 0));
  return Object.freeze({ family: 6, value: groupsToValue(g), text: formatV6(g) });
}

/** The canonical text of the `family` address `value` (which must be in range). */
export function formatIp(family: 4 | 6, value: bigint): string {
  if (family === 4) return formatV4(Number(value));
  const g: number[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) g.push(Number((value >> shift) & 0xffffn));
  return formatV6(g);
}

interface RawAddress {
  readonly family: 4 | 6;
  readonly value: bigint;
  readonly groups: number[] | null;
}

/**
 * Address text as family and value, keeping an IPv4-mapped IPv6 address as IPv6 (for parseCidr's
 * check), or why it is not an address. Throws nothing, so a failed guess costs no exception.
 */
function parseRaw(text: string): RawAddress | string {
  if (text.length === 0) return "empty";
  if (text.length > MAX_ADDRESS_TEXT) return "too long";
  if (text.includes(":")) {
    if (text.startsWith("[") || text.endsWith("]")) return "brackets are not accepted";
    const groups = parseV6(text);
    if (typeof groups === "string") return groups;
    return { family: 6, value: groupsToValue(groups), groups };
  }
  const v = parseV4(text, 0, text.length);
  if (v < 0) return "not four decimal parts 0-255 without leading zeros (a.b.c.d)";
  return { family: 4, value: BigInt(v), groups: null };
}

function fromRaw(raw: RawAddress): IpAddress {
  return raw.groups !== null ? fromGroups(raw.groups) : v4(Number(raw.value));
}

/** Throws PolicyError policy_bad_address. */
export function parseIp(text: string): IpAddress {
  const raw = parseRaw(text);
  if (typeof raw === "string") throw badAddress(text, raw);
  return fromRaw(raw);
}

/** parseIp, with null instead of an error (for telling names from address literals). */
export function tryParseIp(text: string): IpAddress | null {
  const raw = parseRaw(text);
  return typeof raw === "string" ? null : fromRaw(raw);
}

const LOOPBACK: Readonly<Record<4 | 6, IpAddress>> = Object.freeze({ 4: v4(0x7f000001), 6: fromGroups([0, 0, 0, 0, 0, 0, 0, 1]) });

/**
 * The address a TCP connection to `a` reaches: the unspecified address (0.0.0.0, ::, and so
 * ::ffff:0.0.0.0) is this host's loopback, 127.0.0.1 or ::1 (Linux connects it there), so it is
 * decided and forwarded as that; any other address is itself.
 */
export function reachedAddress(a: IpAddress): IpAddress {
  return a.value === 0n ? LOOPBACK[a.family] : a;
}

/** 4 or 16 bytes in network order; 16 bytes of an IPv4-mapped address give the IPv4 address. */
export function ipFromBytes(bytes: Uint8Array): IpAddress {
  if (bytes.length === 4) {
    return v4(((bytes[0] ?? 0) * 0x1000000) + (((bytes[1] ?? 0) << 16) | ((bytes[2] ?? 0) << 8) | (bytes[3] ?? 0)));
  }
  if (bytes.length !== 16) {
    throw new PolicyError("policy_bad_address", `policy: an address of ${bytes.length} bytes (want 4 or 16)`);
  }
  const g = new Array<number>(8);
  for (let i = 0; i < 8; i++) g[i] = ((bytes[2 * i] ?? 0) << 8) | (bytes[2 * i + 1] ?? 0);
  return fromGroups(g);
}

export function ipToBytes(a: IpAddress): Uint8Array {
  const n = a.family === 4 ? 4 : 16;
  const out = new Uint8Array(n);
  let v = a.value;
  for (let i = n - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

function makeCidr(family: 4 | 6, first: bigint, prefix: number): Cidr {
  const host = (1n << BigInt(familyBits(family) - prefix)) - 1n;
  return Object.freeze({ family, first, last: first | host, prefix, text: `${formatIp(family, first)}/${prefix}` });
}

function badCidr(text: string, why: string): PolicyError {
  return new PolicyError("policy_bad_cidr", `policy: ${quote(text)} is not an address range: ${why}`);
}

/**
 * Throws PolicyError policy_bad_cidr. "address/N" with N decimal without leading zeros or sign,
 * 0..32 (IPv4) or 0..128 (IPv6); a bare address is /32 or /128. Rejected: host bits set (the
 * message names the network it probably meant), and ranges inside ::ffff:0:0/96 (write IPv4).
 */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf("/");
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const raw = parseRaw(addrText);
  if (typeof raw === "string") throw badCidr(text, `${quote(addrText)} is not an IP address: ${raw}`);
  const bits = familyBits(raw.family);
  let prefix = bits;
  if (slash >= 0) {
    const n = text.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(n) || Number(n) > bits) {
      throw badCidr(text, `the prefix length must be a decimal number 0..${bits} without leading zeros`);
    }
    prefix = Number(n);
  }
  if (raw.family === 6 && prefix >= 96 && raw.value >> 32n === MAPPED_HI) {
    throw badCidr(text, "it is inside the IPv4-mapped range ::ffff:0:0/96; write IPv4 ranges as IPv4");
  }
  const host = (1n << BigInt(bits - prefix)) - 1n;
  if ((raw.value & host) !== 0n) {
    const meant = `${formatIp(raw.family, raw.value & ~host)}/${prefix}`;
    throw new PolicyError("policy_bad_cidr", `policy: ${quote(text)} has host bits set; did you mean ${meant}?`);
  }
  return makeCidr(raw.family, raw.value, prefix);
}

/** False when the families differ. */
export function cidrContains(c: Cidr, a: IpAddress): boolean {
  return c.family === a.family && a.value >= c.first && a.value <= c.last;
}

/**
 * The fewest CIDR blocks whose union is exactly [first, last], ascending; none when first > last.
 * Throws policy_bad_cidr when a bound is outside the family's address space.
 */
export function cidrsOfRange(family: 4 | 6, first: bigint, last: bigint): Cidr[] {
  const bits = familyBits(family);
  const max = (1n << BigInt(bits)) - 1n;
  if (first < 0n || last < 0n || first > max || last > max) {
    throw new PolicyError("policy_bad_cidr", `policy: range ${first}-${last} is outside the IPv${family} address space`);
  }
  const out: Cidr[] = [];
  let cur = first;
  while (cur <= last) {
    // The largest block aligned at cur: its trailing zero bits, capped by the span left.
    let k = cur === 0n ? bits : (cur & -cur).toString(2).length - 1;
    const span = last - cur + 1n;
    const fit = span.toString(2).length - 1;
    if (fit < k) k = fit;
    out.push(makeCidr(family, cur, bits - k));
    cur += 1n << BigInt(k);
  }
  return out;
}
