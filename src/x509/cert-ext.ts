/**
 * The certificate extensions SPIFFE validation reads (RFC 5280 section 4.2): basicConstraints,
 * keyUsage, extKeyUsage, subjectAltName, subject and authority key identifiers. Every other
 * extension is kept only as an OID; the critical ones among them are listed in
 * `unhandledCritical` so a verifier can reject them (section 4.2: a certificate with an
 * unrecognised critical extension MUST be rejected).
 */
import { DerError, TAG, children, readBitString, readBoolean, readOid, readSmallUint, readTlv, value, type Tlv } from "./der.ts";

export const OID = {
  basicConstraints: "2.5.29.19",
  keyUsage: "2.5.29.15",
  extKeyUsage: "2.5.29.37",
  subjectAltName: "2.5.29.17",
  subjectKeyId: "2.5.29.14",
  authorityKeyId: "2.5.29.35",
  serverAuth: "1.3.6.1.5.5.7.3.1",
  clientAuth: "1.3.6.1.5.5.7.3.2",
} as const;

export interface ExtensionFields {
  /** Every extension OID present, in order. */
  readonly extensionOids: readonly string[];
  /** undefined when the extension is absent. */
  readonly basicConstraints: { readonly cA: boolean; readonly pathLen: number | undefined; readonly critical: boolean } | undefined;
  /** Bit i set for RFC 5280 KeyUsage bit i (see KEY_USAGE); undefined when absent. */
  readonly keyUsage: number | undefined;
  readonly keyUsageCritical: boolean;
  readonly extKeyUsage: readonly string[] | undefined;
  readonly uriSans: readonly string[];
  readonly dnsSans: readonly string[];
  /** How many SANs are neither URI nor DNS (email, IP, directory name...). */
  readonly otherSanCount: number;
  readonly sanCritical: boolean;
  readonly subjectKeyId: Uint8Array | undefined;
  readonly authorityKeyId: Uint8Array | undefined;
  readonly unhandledCritical: readonly string[];
}

/** Reads an IA5String-like name ([2] dNSName, [6] URI): 7-bit ASCII only. */
function ia5(bytes: Uint8Array, t: Tlv): string {
  const v = value(bytes, t);
  for (const b of v) if (b > 0x7f) throw new DerError("non-ASCII character in an IA5String name");
  return String.fromCharCode(...v);
}

/** Reads GeneralNames (section 4.2.1.6) into URI, DNS and a count of the rest. */
export function readGeneralNames(bytes: Uint8Array, seq: Tlv): { uris: string[]; dns: string[]; other: number } {
  if (seq.tag !== TAG.SEQUENCE) throw new DerError("bad subjectAltName");
  const out = { uris: [] as string[], dns: [] as string[], other: 0 };
  const names = children(bytes, seq);
  if (names.length === 0) throw new DerError("empty subjectAltName");
  for (const n of names) {
    if (n.tag === 0x86) out.uris.push(ia5(bytes, n));
    else if (n.tag === 0x82) out.dns.push(ia5(bytes, n));
    else if ((n.tag & 0xc0) === 0x80) out.other++;
    else throw new DerError("bad general name");
  }
  return out;
}

/** Reads the value of a basicConstraints extension. */
export function readBasicConstraints(bytes: Uint8Array, seq: Tlv): { cA: boolean; pathLen: number | undefined } {
  if (seq.tag !== TAG.SEQUENCE) throw new DerError("bad basicConstraints");
  const f = children(bytes, seq);
  let k = 0;
  let cA = false;
  if (f[0]?.tag === TAG.BOOLEAN) {
    // An explicit FALSE is BER, not DER, but some encoders write it; it means the same.
    cA = readBoolean(bytes, f[0]);
    k = 1;
  }
  let pathLen: number | undefined;
  if (f[k] !== undefined) {
    pathLen = readSmallUint(bytes, f[k]!);
    k++;
  }
  if (k !== f.length) throw new DerError("bad basicConstraints");
  return { cA, pathLen };
}

/** The single TLV that an extension's OCTET STRING value holds. */
function inner(bytes: Uint8Array, octets: Tlv): Tlv {
  const t = readTlv(bytes, octets.valueStart, octets.end);
  if (t.end !== octets.end) throw new DerError("trailing bytes in an extension value");
  return t;
}

export function readExtensions(bytes: Uint8Array, exts: Tlv | undefined): ExtensionFields {
  const r = {
    extensionOids: [] as string[],
    basicConstraints: undefined as ExtensionFields["basicConstraints"],
    keyUsage: undefined as number | undefined,
    keyUsageCritical: false,
    extKeyUsage: undefined as string[] | undefined,
    uriSans: [] as string[],
    dnsSans: [] as string[],
    otherSanCount: 0,
    sanCritical: false,
    subjectKeyId: undefined as Uint8Array | undefined,
    authorityKeyId: undefined as Uint8Array | undefined,
    unhandledCritical: [] as string[],
  };
  if (exts === undefined) return r;
  const list = children(bytes, exts);
  if (list.length === 0) throw new DerError("empty extensions");
  for (const e of list) {
    if (e.tag !== TAG.SEQUENCE) throw new DerError("bad extension");
    const f = children(bytes, e);
    const oid = readOid(bytes, f[0] ?? e);
    let critical = false;
    let k = 1;
    if (f[1]?.tag === TAG.BOOLEAN) {
      critical = readBoolean(bytes, f[1]);
      k = 2;
    }
    const octets = f[k];
    if (octets?.tag !== TAG.OCTET_STRING || f.length !== k + 1) throw new DerError("bad extension");
    if (r.extensionOids.includes(oid)) throw new DerError(`extension ${oid} appears twice`);
    r.extensionOids.push(oid);
    switch (oid) {
      case OID.basicConstraints:
        r.basicConstraints = { ...readBasicConstraints(bytes, inner(bytes, octets)), critical };
        break;
      case OID.keyUsage: {
        const { bits } = readBitString(bytes, inner(bytes, octets));
        let mask = 0;
        for (let b = 0; b < Math.min(bits.length * 8, 9); b++) if (bits[b >> 3]! & (0x80 >> (b & 7))) mask |= 1 << b;
        r.keyUsage = mask;
        r.keyUsageCritical = critical;
        break;
      }
      case OID.extKeyUsage: {
        const seq = inner(bytes, octets);
        if (seq.tag !== TAG.SEQUENCE) throw new DerError("bad extKeyUsage");
        r.extKeyUsage = children(bytes, seq).map((t) => readOid(bytes, t));
        if (r.extKeyUsage.length === 0) throw new DerError("empty extKeyUsage");
        break;
      }
      case OID.subjectAltName: {
        const names = readGeneralNames(bytes, inner(bytes, octets));
        r.uriSans = names.uris;
        r.dnsSans = names.dns;
        r.otherSanCount = names.other;
        r.sanCritical = critical;
        break;
      }
      case OID.subjectKeyId: {
        const t = inner(bytes, octets);
        if (t.tag !== TAG.OCTET_STRING) throw new DerError("bad subjectKeyIdentifier");
        r.subjectKeyId = value(bytes, t);
        break;
      }
      case OID.authorityKeyId: {
        const seq = inner(bytes, octets);
        if (seq.tag !== TAG.SEQUENCE) throw new DerError("bad authorityKeyIdentifier");
        for (const t of children(bytes, seq)) if (t.tag === 0x80) r.authorityKeyId = value(bytes, t);
        break;
      }
      default:
        if (critical) r.unhandledCritical.push(oid);
    }
  }
  return r;
}
