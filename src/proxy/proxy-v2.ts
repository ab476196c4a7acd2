/**
 * The PROXY protocol v2 header an inbound listener sends its backend first (haproxy's
 * proxy-protocol.txt, section 2.2), and a strict decoder for it.
 *
 * encodeProxyV2 writes exactly: the 12-byte signature, 0x21 (v2, PROXY), family 0x11 (TCP over
 * IPv4) when both addresses are IPv4 (an IPv4-mapped IPv6 address counts as IPv4) or else 0x21
 * (TCP over IPv6, an IPv4 address written as ::ffff:a.b.c.d), the length, source and destination
 * addresses, their ports, then the TLVs 0x05 (PP2_TYPE_UNIQUE_ID: the 16-byte connection id),
 * 0x20 (PP2_TYPE_SSL: client 0x07, verify 0, sub-TLV 0x21 with the TLS version) and 0xE0 (the
 * first custom type: the client's SPIFFE ID, UTF-8). Integers are big-endian.
 * Refused: a port outside 0-65535, a connection id not of 16 bytes, a SPIFFE ID that is empty,
 * holds NUL or a lone surrogate, or is over 2048 UTF-8 bytes, a TLS version that is not printable
 * ASCII, an address value outside its family, and a header over MAX_PROXY_V2_BYTES.
 *
 * decodeProxyV2 accepts command PROXY with family 0x11 or 0x21, and LOCAL with those or 0x00
 * (UNSPEC: no addresses). Every TLV is listed; 0x05, 0x20 and 0xE0 are also read into fields and
 * may appear once each. CRC32C (0x03) is listed, not checked. "need_more" while every byte present
 * fits a header (or the first 5 bytes of "PROXY ", to tell a v1 header from a bad signature); an
 * error as soon as one does not; once decided, more bytes change nothing.
 */
import { TidegateError, quote } from "../errors.ts";
import { ipFromBytes, ipToBytes, type IpAddress } from "../policy/address.ts";

export const PROXY_V2_ERROR_CODES = [
  /** encode: a port that is not an integer 0-65535. */
  "proxy_v2_bad_port",
  /** encode: an address whose value is outside its family's range. */
  "proxy_v2_bad_address",
  /** encode: a connection id that is not 16 bytes. */
  "proxy_v2_bad_connection_id",
  /** encode: a TLS version that is empty or not printable ASCII. */
  "proxy_v2_bad_tls_version",
  /** encode and decode (TLV 0xE0): empty, NUL, lone surrogate / not UTF-8, over 2048 bytes. */
  "proxy_v2_bad_spiffe_id",
  /** encode: more than MAX_PROXY_V2_BYTES in all. */
  "proxy_v2_too_large",
  /** decode: the first 12 bytes are not the v2 signature (and not a v1 text header). */
  "proxy_v2_bad_signature",
  /** decode: a PROXY v1 text header ("PROXY TCP4 ..."): only v2 is accepted. */
  "proxy_v2_version_1",
  /** decode: the version nibble of byte 12 is not 2. */
  "proxy_v2_bad_version",
  /** decode: the command nibble of byte 12 is neither LOCAL (0) nor PROXY (1). */
  "proxy_v2_bad_command",
  /** decode: a family/protocol byte other than 0x11 or 0x21 (or 0x00 with LOCAL). */
  "proxy_v2_bad_family",
  /** decode: a length shorter than the family's address block. */
  "proxy_v2_short_addresses",
  /** decode: a TLV or SSL sub-TLV whose header or value runs past its container. */
  "proxy_v2_tlv_overrun",
  /** decode: a type among 0x05, 0x20, 0xE0 (or SSL sub-type 0x21) that appears twice. */
  "proxy_v2_duplicate_tlv",
  /** decode: a unique id (0x05) over 128 bytes. */
  "proxy_v2_bad_unique_id",
  /** decode: an SSL TLV (0x20) under 5 bytes, or a version sub-TLV that is not printable ASCII. */
  "proxy_v2_bad_ssl_tlv",
] as const;

export type ProxyV2ErrorCode = (typeof PROXY_V2_ERROR_CODES)[number];

export class ProxyV2Error extends TidegateError<ProxyV2ErrorCode> {}

/** The longest header: 16 fixed bytes and a 16-bit length. */
export const MAX_PROXY_V2_BYTES = 16 + 0xffff;
export const MAX_SPIFFE_ID_BYTES = 2048;
export const MAX_UNIQUE_ID_BYTES = 128;

export const PP2_TYPE_UNIQUE_ID = 0x05;
export const PP2_TYPE_SSL = 0x20;
export const PP2_SUBTYPE_SSL_VERSION = 0x21;
export const PP2_TYPE_SPIFFE_ID = 0xe0;
/** PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS. */
export const PP2_CLIENT_VERIFIED_TLS = 0x07;

export interface ProxyEndpoint {
  readonly address: IpAddress;
  readonly port: number;
}

export interface ProxyHeader {
  readonly source: ProxyEndpoint;
  readonly destination: ProxyEndpoint;
  /** 16 bytes. */
  readonly connectionId: Uint8Array;
  readonly spiffeId: string;
  /** Default "TLSv1.3". */
  readonly tlsVersion?: string;
}

export interface ProxyTlv {
  readonly type: number;
  readonly value: Uint8Array;
}

export interface ProxySsl {
  readonly client: number;
  readonly verify: number;
  /** Sub-TLV 0x21, or null without one. */
  readonly version: string | null;
  readonly tlvs: readonly ProxyTlv[];
}

interface DecodedTlvs {
  /** Every TLV, in order. */
  readonly tlvs: readonly ProxyTlv[];
  readonly uniqueId: Uint8Array | null;
  readonly spiffeId: string | null;
  readonly ssl: ProxySsl | null;
}

/** Addresses decode through ipFromBytes: an IPv4-mapped one in a 0x21 header gives IPv4. */
export type DecodedProxyV2 = DecodedTlvs &
  (
    | { readonly command: "proxy"; readonly family: "tcp4" | "tcp6"; readonly source: ProxyEndpoint; readonly destination: ProxyEndpoint }
    | { readonly command: "local"; readonly family: "unspec" | "tcp4" | "tcp6"; readonly source: ProxyEndpoint | null; readonly destination: ProxyEndpoint | null }
  );

const SIGNATURE = Uint8Array.of(0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a);
const V1_PREFIX = Uint8Array.of(0x50, 0x52, 0x4f, 0x58, 0x59, 0x20);
const FIXED = 16;
const V4_BLOCK = 12;
const V6_BLOCK = 36;
const TLV_HEADER = 3;
const SSL_FIXED = 5;
const FAMILIES: Record<number, { name: "unspec" | "tcp4" | "tcp6"; block: number }> = {
  0x00: { name: "unspec", block: 0 },
  0x11: { name: "tcp4", block: V4_BLOCK },
  0x21: { name: "tcp6", block: V6_BLOCK },
};

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function hex(n: number): string {
  return `0x${n.toString(16).padStart(2, "0")}`;
}

function fail(code: ProxyV2ErrorCode, why: string, cause?: unknown): ProxyV2Error {
  return new ProxyV2Error(code, `proxy-v2: ${why}`, cause === undefined ? undefined : { cause });
}

// ---- encode ----

function checkPort(port: number, which: string): void {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw fail("proxy_v2_bad_port", `encode: ${which} port ${port} is outside 0-65535`);
}

/** 4 bytes for IPv4 and IPv4-mapped IPv6, 16 for other IPv6. */
function addressBytes(a: IpAddress, which: string): Uint8Array {
  const bits = a.family === 4 ? 32n : 128n;
  if ((a.family !== 4 && a.family !== 6) || a.value < 0n || a.value >> bits !== 0n) {
    throw fail("proxy_v2_bad_address", `encode: ${which} address ${quote(String(a.text))} has no valid IPv${a.family} value`);
  }
  const b = ipToBytes(a);
  return a.family === 6 && a.value >> 32n === 0xffffn ? b.subarray(12) : b;
}

function mapped(v4: Uint8Array): Uint8Array {
  const out = new Uint8Array(16);
  out[10] = 0xff;
  out[11] = 0xff;
  out.set(v4, 12);
  return out;
}

function hasLoneSurrogate(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xdc00 && c <= 0xdfff) return true;
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = s.charCodeAt(i + 1);
      if (!(next >= 0xdc00 && next <= 0xdfff)) return true;
      i++;
    }
  }
  return false;
}

function spiffeIdBytes(id: string): Uint8Array {
  const why = (text: string) => fail("proxy_v2_bad_spiffe_id", `encode: SPIFFE ID ${quote(id)} ${text}`);
  if (id.length === 0) throw why("is empty");
  if (id.includes("\0")) throw why("holds a NUL");
  if (hasLoneSurrogate(id)) throw why("holds a lone surrogate (not UTF-8)");
  const b = new TextEncoder().encode(id);
  if (b.length > MAX_SPIFFE_ID_BYTES) throw why(`is ${b.length} bytes (at most ${MAX_SPIFFE_ID_BYTES})`);
  return b;
}

function tlsVersionBytes(v: string): Uint8Array {
  if (!/^[\x21-\x7e]+$/.test(v)) throw fail("proxy_v2_bad_tls_version", `encode: TLS version ${quote(v)} is not printable ASCII`);
  return Uint8Array.from(v, (c) => c.charCodeAt(0));
}

function tlv(type: number, parts: readonly (Uint8Array | readonly number[])[]): number[] {
  const value = parts.flatMap((p) => Array.from(p));
  return [type, (value.length >> 8) & 0xff, value.length & 0xff, ...value];
}

/** The header for `h`; throws ProxyV2Error (see the module comment). */
export function encodeProxyV2(h: ProxyHeader): Uint8Array {
  checkPort(h.source.port, "source");
  checkPort(h.destination.port, "destination");
  if (h.connectionId.length !== 16) {
    throw fail("proxy_v2_bad_connection_id", `encode: a connection id of ${h.connectionId.length} bytes (want 16)`);
  }
  const src = addressBytes(h.source.address, "source");
  const dst = addressBytes(h.destination.address, "destination");
  const version = tlsVersionBytes(h.tlsVersion ?? "TLSv1.3");
  const tlvs = [
    ...tlv(PP2_TYPE_UNIQUE_ID, [h.connectionId]),
    ...tlv(PP2_TYPE_SSL, [[PP2_CLIENT_VERIFIED_TLS, 0, 0, 0, 0], tlv(PP2_SUBTYPE_SSL_VERSION, [version])]),
    ...tlv(PP2_TYPE_SPIFFE_ID, [spiffeIdBytes(h.spiffeId)]),
  ];
  const v4 = src.length === 4 && dst.length === 4;
  const block = v4 ? V4_BLOCK : V6_BLOCK;
  const length = block + tlvs.length;
  if (length > 0xffff) throw fail("proxy_v2_too_large", `encode: a header of ${FIXED + length} bytes (at most ${MAX_PROXY_V2_BYTES})`);
  const out = new Uint8Array(FIXED + length);
  const view = new DataView(out.buffer);
  out.set(SIGNATURE, 0);
  out[12] = 0x21;
  out[13] = v4 ? 0x11 : 0x21;
  view.setUint16(14, length);
  const width = v4 ? 4 : 16;
  out.set(v4 ? src : src.length === 4 ? mapped(src) : src, FIXED);
  out.set(v4 ? dst : dst.length === 4 ? mapped(dst) : dst, FIXED + width);
  view.setUint16(FIXED + 2 * width, h.source.port);
  view.setUint16(FIXED + 2 * width + 2, h.destination.port);
  out.set(tlvs, FIXED + block);
  return out;
}

// ---- decode ----

/**
 * Checks the fixed bytes present; the family entry once byte 13 is there, else null. Up to 5 bytes
 * of "PROXY " are null too: the 6th decides between a v1 header and a bad signature.
 */
function checkFixed(b: Uint8Array): (typeof FAMILIES)[number] | null {
  const n = Math.min(b.length, SIGNATURE.length);
  for (let i = 0; i < n; i++) {
    if (b[i] === SIGNATURE[i]) continue;
    if (b.subarray(0, V1_PREFIX.length).every((c, j) => c === V1_PREFIX[j])) {
      if (b.length < V1_PREFIX.length) return null;
      throw fail("proxy_v2_version_1", "decode: a PROXY v1 text header (only v2 is accepted)");
    }
    throw fail("proxy_v2_bad_signature", `decode: byte ${i} is ${hex(b[i] ?? 0)}, not the v2 signature's ${hex(SIGNATURE[i] ?? 0)}`);
  }
  const verCmd = b[12];
  if (verCmd === undefined) return null;
  if (verCmd >> 4 !== 2) throw fail("proxy_v2_bad_version", `decode: version ${verCmd >> 4} (byte 12 is ${hex(verCmd)}; want 2)`);
  if ((verCmd & 15) > 1) throw fail("proxy_v2_bad_command", `decode: command ${verCmd & 15} (want LOCAL 0 or PROXY 1)`);
  const fam = b[13];
  if (fam === undefined) return null;
  const family = FAMILIES[fam];
  if (family === undefined || (family.name === "unspec" && (verCmd & 15) === 1)) {
    throw fail("proxy_v2_bad_family", `decode: family/protocol ${hex(fam)} with ${(verCmd & 15) === 1 ? "PROXY" : "LOCAL"} (want 0x11 TCP4 or 0x21 TCP6)`);
  }
  return family;
}

/** The TLVs of `b[from, end)`; each header and value must fit before `end`. */
function readTlvs(b: Uint8Array, from: number, end: number, where: string): ProxyTlv[] {
  const out: ProxyTlv[] = [];
  for (let at = from; at < end; ) {
    if (at + TLV_HEADER > end) throw fail("proxy_v2_tlv_overrun", `decode: ${end - at} bytes after the last ${where}, too few for a TLV header`);
    const type = b[at] ?? 0;
    const len = ((b[at + 1] ?? 0) << 8) | (b[at + 2] ?? 0);
    const valueEnd = at + TLV_HEADER + len;
    if (valueEnd > end) throw fail("proxy_v2_tlv_overrun", `decode: ${where} ${hex(type)} of ${len} bytes runs ${valueEnd - end} bytes past its container`);
    out.push(Object.freeze({ type, value: b.slice(at + TLV_HEADER, valueEnd) }));
    at = valueEnd;
  }
  return out;
}

function once(tlvs: readonly ProxyTlv[], type: number, where: string): ProxyTlv | null {
  const found = tlvs.filter((t) => t.type === type);
  if (found.length > 1) throw fail("proxy_v2_duplicate_tlv", `decode: ${where} ${hex(type)} appears ${found.length} times`);
  return found[0] ?? null;
}

function readSsl(t: ProxyTlv): ProxySsl {
  const v = t.value;
  if (v.length < SSL_FIXED) throw fail("proxy_v2_bad_ssl_tlv", `decode: an SSL TLV of ${v.length} bytes (at least ${SSL_FIXED})`);
  const tlvs = readTlvs(v, SSL_FIXED, v.length, "SSL sub-TLV");
  const sub = once(tlvs, PP2_SUBTYPE_SSL_VERSION, "SSL sub-TLV");
  let version: string | null = null;
  if (sub !== null) {
    version = "";
    for (const c of sub.value) version += String.fromCharCode(c);
    if (!/^[\x21-\x7e]+$/.test(version)) throw fail("proxy_v2_bad_ssl_tlv", `decode: SSL version ${quote(version)} is not printable ASCII`);
  }
  const verify = new DataView(v.buffer, v.byteOffset, v.byteLength).getUint32(1);
  return Object.freeze({ client: v[0] ?? 0, verify, version, tlvs: Object.freeze(tlvs) });
}

function readSpiffeId(t: ProxyTlv): string {
  const why = (text: string, cause?: unknown) => fail("proxy_v2_bad_spiffe_id", `decode: SPIFFE ID TLV ${text}`, cause);
  if (t.value.length === 0) throw why("is empty");
  if (t.value.length > MAX_SPIFFE_ID_BYTES) throw why(`of ${t.value.length} bytes (at most ${MAX_SPIFFE_ID_BYTES})`);
  let id: string;
  try {
    id = utf8.decode(t.value);
  } catch (e) {
    throw why("is not UTF-8", e);
  }
  if (id.includes("\0")) throw why(`${quote(id)} holds a NUL`);
  return id;
}

function endpoint(b: Uint8Array, at: number, width: number, portAt: number): ProxyEndpoint {
  return Object.freeze({ address: ipFromBytes(b.slice(at, at + width)), port: ((b[portAt] ?? 0) << 8) | (b[portAt + 1] ?? 0) });
}

/**
 * The header at the start of `bytes` and its length in bytes (what follows is the connection's
 * data), or "need_more". Throws ProxyV2Error only (see the module comment).
 */
export function decodeProxyV2(bytes: Uint8Array): { header: DecodedProxyV2; length: number } | "need_more" {
  const family = checkFixed(bytes);
  if (family === null || bytes.length < FIXED) return "need_more";
  const len = ((bytes[14] ?? 0) << 8) | (bytes[15] ?? 0);
  if (len < family.block) {
    throw fail("proxy_v2_short_addresses", `decode: length ${len} is shorter than the ${family.name} address block (${family.block} bytes)`);
  }
  const end = FIXED + len;
  if (bytes.length < end) return "need_more";
  const width = family.block === V4_BLOCK ? 4 : 16;
  const hasAddresses = family.block > 0;
  const source = hasAddresses ? endpoint(bytes, FIXED, width, FIXED + 2 * width) : null;
  const destination = hasAddresses ? endpoint(bytes, FIXED + width, width, FIXED + 2 * width + 2) : null;
  const tlvs = readTlvs(bytes, FIXED + family.block, end, "TLV");
  const unique = once(tlvs, PP2_TYPE_UNIQUE_ID, "TLV");
  if (unique !== null && unique.value.length > MAX_UNIQUE_ID_BYTES) {
    throw fail("proxy_v2_bad_unique_id", `decode: a unique id of ${unique.value.length} bytes (at most ${MAX_UNIQUE_ID_BYTES})`);
  }
  const ssl = once(tlvs, PP2_TYPE_SSL, "TLV");
  const spiffe = once(tlvs, PP2_TYPE_SPIFFE_ID, "TLV");
  const header = Object.freeze({
    command: (bytes[12] ?? 0) & 1 ? "proxy" : "local",
    family: family.name,
    source,
    destination,
    tlvs: Object.freeze(tlvs),
    uniqueId: unique === null ? null : unique.value,
    spiffeId: spiffe === null ? null : readSpiffeId(spiffe),
    ssl: ssl === null ? null : readSsl(ssl),
  }) as DecodedProxyV2;
  return { header, length: end };
}
