/**
 * A small strict DER reader (ITU-T X.690 section 10) for the hot paths that pkijs/asn1js are too
 * slow for (verifying an SVID, checking a CSR). It never builds an object tree: it walks TLVs in
 * place and returns subarrays of the input.
 *
 * Rejected with `DerError` (the callers turn it into their own code): a truncated element, the
 * indefinite length form, a length not in its shortest form, high tag numbers (>= 31, unused in
 * X.509), and a length that overruns its parent.
 */
export class DerError extends Error {}

export interface Tlv {
  /** The identifier octet (class, constructed bit and tag number). */
  readonly tag: number;
  /** Offset of the identifier octet (the TLV's whole encoding is `bytes[start, end)`). */
  readonly start: number;
  /** Offset of the first content octet. */
  readonly valueStart: number;
  readonly end: number;
}

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  T61_STRING: 0x14,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  UNIVERSAL_STRING: 0x1c,
  BMP_STRING: 0x1e,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** Reads the TLV at `offset`, which must end at or before `limit`. */
export function readTlv(bytes: Uint8Array, offset: number, limit: number = bytes.length): Tlv {
  if (offset + 2 > limit) throw new DerError("truncated element");
  const tag = bytes[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError("high tag number");
  let len = bytes[offset + 1]!;
  let pos = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0) throw new DerError("indefinite length");
    if (n > 4) throw new DerError("length too large");
    if (pos + n > limit) throw new DerError("truncated length");
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + bytes[pos + i]!;
    if (bytes[pos] === 0 || len < 0x80) throw new DerError("length not minimal");
    pos += n;
  }
  const end = pos + len;
  if (end > limit) throw new DerError("element overruns its parent");
  return { tag, start: offset, valueStart: pos, end };
}

/** Reads the TLV at `offset` and checks its tag. */
export function expectTlv(bytes: Uint8Array, offset: number, limit: number, tag: number, what: string): Tlv {
  const t = readTlv(bytes, offset, limit);
  if (t.tag !== tag) throw new DerError(`${what}: unexpected tag 0x${t.tag.toString(16)}`);
  return t;
}

/** The children of a constructed TLV, each checked to fit exactly. */
export function children(bytes: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  let pos = parent.valueStart;
  while (pos < parent.end) {
    const t = readTlv(bytes, pos, parent.end);
    out.push(t);
    pos = t.end;
  }
  return out;
}

export function value(bytes: Uint8Array, t: Tlv): Uint8Array {
  return bytes.subarray(t.valueStart, t.end);
}

export function whole(bytes: Uint8Array, t: Tlv): Uint8Array {
  return bytes.subarray(t.start, t.end);
}

/** A DER BOOLEAN: one octet, 0x00 or 0xff. */
export function readBoolean(bytes: Uint8Array, t: Tlv): boolean {
  if (t.tag !== TAG.BOOLEAN || t.end - t.valueStart !== 1) throw new DerError("bad boolean");
  const v = bytes[t.valueStart];
  if (v === 0xff) return true;
  if (v === 0x00) return false;
  throw new DerError("boolean not 0x00 or 0xff");
}

/** A small non-negative INTEGER (lengths, versions), minimal encoding required. */
export function readSmallUint(bytes: Uint8Array, t: Tlv): number {
  const v = readIntegerBytes(bytes, t);
  if (v.length > 4 || (v[0]! & 0x80) !== 0) throw new DerError("integer negative or too large");
  let n = 0;
  for (const b of v) n = n * 256 + b;
  return n;
}

/** The content octets of an INTEGER, checked to be minimally encoded. */
export function readIntegerBytes(bytes: Uint8Array, t: Tlv): Uint8Array {
  if (t.tag !== TAG.INTEGER || t.end === t.valueStart) throw new DerError("bad integer");
  const v = value(bytes, t);
  if (v.length > 1 && ((v[0] === 0 && (v[1]! & 0x80) === 0) || (v[0] === 0xff && (v[1]! & 0x80) !== 0))) {
    throw new DerError("integer not minimal");
  }
  return v;
}

/** A BIT STRING's bits: the unused-bits count and the octets after it. */
export function readBitString(bytes: Uint8Array, t: Tlv): { unused: number; bits: Uint8Array } {
  if (t.tag !== TAG.BIT_STRING || t.end === t.valueStart) throw new DerError("bad bit string");
  const unused = bytes[t.valueStart]!;
  const bits = bytes.subarray(t.valueStart + 1, t.end);
  if (unused > 7 || (bits.length === 0 && unused !== 0)) throw new DerError("bad bit string padding");
  if (bits.length > 0 && (bits[bits.length - 1]! & ((1 << unused) - 1)) !== 0) {
    throw new DerError("bit string padding bits not zero");
  }
  return { unused, bits };
}

/** The dotted text of an OBJECT IDENTIFIER (X.690 section 8.19). */
export function readOid(bytes: Uint8Array, t: Tlv): string {
  if (t.tag !== TAG.OID || t.end === t.valueStart) throw new DerError("bad object identifier");
  const parts: number[] = [];
  let n = 0;
  let first = true;
  for (let i = t.valueStart; i < t.end; i++) {
    const b = bytes[i]!;
    if (n === 0 && b === 0x80) throw new DerError("object identifier not minimal");
    n = n * 128 + (b & 0x7f);
    if (n > Number.MAX_SAFE_INTEGER / 256) throw new DerError("object identifier arc too large");
    if ((b & 0x80) === 0) {
      if (first) {
        const a = n < 40 ? 0 : n < 80 ? 1 : 2;
        parts.push(a, n - a * 40);
        first = false;
      } else parts.push(n);
      n = 0;
    } else if (i === t.end - 1) throw new DerError("object identifier truncated");
  }
  return parts.join(".");
}

const DIGITS = /^[0-9]+$/;

/** UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ), RFC 5280 section 4.1.2.5. */
export function readTime(bytes: Uint8Array, t: Tlv): number {
  const s = String.fromCharCode(...value(bytes, t));
  let year: number;
  let rest: string;
  if (t.tag === TAG.UTC_TIME && s.length === 13) {
    const yy = Number(s.slice(0, 2));
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
    rest = s.slice(2);
  } else if (t.tag === TAG.GENERALIZED_TIME && s.length === 15) {
    year = Number(s.slice(0, 4));
    rest = s.slice(4);
  } else throw new DerError("bad time");
  if (rest[10] !== "Z" || !DIGITS.test(s.slice(0, s.length - 1))) throw new DerError("bad time");
  const mo = Number(rest.slice(0, 2));
  const d = Number(rest.slice(2, 4));
  const h = Number(rest.slice(4, 6));
  const mi = Number(rest.slice(6, 8));
  const se = Number(rest.slice(8, 10));
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 59) throw new DerError("bad time");
  const ms = Date.UTC(year, mo - 1, d, h, mi, se);
  if (new Date(ms).getUTCDate() !== d) throw new DerError("bad time");
  return ms;
}
