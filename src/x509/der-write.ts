/**
 * A minimal DER writer (X.690 section 10) for the one certificate minted at volume, the leaf
 * X.509-SVID: asn1js/pkijs encoding costs milliseconds per certificate, this costs microseconds.
 * Output is checked byte for byte against pkijs's encoding of the same fields (mint.test.ts).
 */
import { TAG } from "./der.ts";

function header(tag: number, len: number): number[] {
  if (len < 0x80) return [tag, len];
  const out: number[] = [];
  for (let n = len; n > 0; n = Math.floor(n / 256)) out.unshift(n & 0xff);
  return [tag, 0x80 | out.length, ...out];
}

/** A TLV whose content is the concatenation of `parts`. */
export function tlv(tag: number, ...parts: Uint8Array[]): Uint8Array {
  let len = 0;
  for (const p of parts) len += p.length;
  const h = header(tag, len);
  const out = new Uint8Array(h.length + len);
  out.set(h, 0);
  let pos = h.length;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

export const seq = (...parts: Uint8Array[]): Uint8Array => tlv(TAG.SEQUENCE, ...parts);

/** An INTEGER from unsigned big-endian bytes (a 0x00 is prepended when the top bit is set). */
export function uint(bytes: Uint8Array): Uint8Array {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  const v = bytes.subarray(i);
  return (v[0]! & 0x80) !== 0 ? tlv(TAG.INTEGER, Uint8Array.of(0), v) : tlv(TAG.INTEGER, v);
}

export function oid(dotted: string): Uint8Array {
  const arcs = dotted.split(".").map(Number);
  const body: number[] = [];
  const push = (n: number) => {
    const chunk = [n & 0x7f];
    for (n = Math.floor(n / 128); n > 0; n = Math.floor(n / 128)) chunk.unshift((n & 0x7f) | 0x80);
    body.push(...chunk);
  };
  push(arcs[0]! * 40 + arcs[1]!);
  for (const a of arcs.slice(2)) push(a);
  return tlv(TAG.OID, Uint8Array.from(body));
}

export function ascii(tag: number, text: string): Uint8Array {
  const b = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) b[i] = text.charCodeAt(i) & 0x7f;
  return tlv(tag, b);
}

/** UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 section 4.1.2.5); whole seconds. */
export function time(ms: number): Uint8Array {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, "0");
  const y = d.getUTCFullYear();
  const rest = `${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
  return y >= 2050 ? ascii(TAG.GENERALIZED_TIME, `${y}${rest}`) : ascii(TAG.UTC_TIME, `${p(y % 100)}${rest}`);
}

/** An Extension: extnID, critical only when true (DER omits the default), extnValue. */
export function extension(id: Uint8Array, critical: boolean, value: Uint8Array): Uint8Array {
  return critical ? seq(id, Uint8Array.of(TAG.BOOLEAN, 1, 0xff), tlv(TAG.OCTET_STRING, value)) : seq(id, tlv(TAG.OCTET_STRING, value));
}

/** r||s (WebCrypto's ECDSA output) as ECDSA-Sig-Value (RFC 3279 section 2.2.3). */
export function ecdsaRawToDer(raw: Uint8Array): Uint8Array {
  const half = raw.length / 2;
  return seq(uint(raw.subarray(0, half)), uint(raw.subarray(half)));
}
