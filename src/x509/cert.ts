/**
 * Reading X.509 certificates (RFC 5280 section 4.1) from DER.
 *
 * `readCertificate` is the strict, fast reader every check in src/x509 uses: it returns a frozen
 * `CertInfo` with the fields SPIFFE validation needs. `parseCertificate` returns a pkijs
 * Certificate for code that needs the full object. Both throw `X509Error` with code
 * `x509_malformed`, never an asn1js/pkijs exception, for: bytes that are not one DER
 * Certificate (including trailing bytes), a version other than v1..v3, extensions outside a v3
 * certificate, an extension present twice (section 4.2), a signature algorithm in the TBS that
 * differs from the outer one (section 4.1.1.2), and malformed basicConstraints, keyUsage,
 * extKeyUsage, subjectAltName, subject/authority key identifier values.
 */
import * as asn1js from "asn1js";
import * as pkijs from "pkijs";
import { subtle } from "./engine.ts";
import { toArrayBuffer, toHex } from "./encoding.ts";
import { DerError, TAG, children, expectTlv, readBitString, readIntegerBytes, readOid, readSmallUint, readTime, value, whole, type Tlv } from "./der.ts";
import { X509Error } from "./x509-errors.ts";
import { readExtensions, type ExtensionFields } from "./cert-ext.ts";
import { nameToText } from "./name.ts";
import { describeSpki } from "./keys.ts";
import { SpiffeId } from "../spiffe/id.ts";

export interface CertInfo extends ExtensionFields {
  /** The whole certificate (the caller's bytes, not copied). */
  readonly der: Uint8Array;
  /** The signed part, TBSCertificate. */
  readonly tbs: Uint8Array;
  /** 1, 2 or 3. */
  readonly version: number;
  readonly serial: Uint8Array;
  /** The signature algorithm OID (dotted). */
  readonly signatureAlgorithm: string;
  /** The DER of the signature AlgorithmIdentifier (to tell parameters apart). */
  readonly signatureAlgorithmDer: Uint8Array;
  /** The signature BIT STRING's octets. */
  readonly signature: Uint8Array;
  /** DER of the issuer and subject Names (compared byte for byte when building paths). */
  readonly issuer: Uint8Array;
  readonly subject: Uint8Array;
  readonly subjectIsEmpty: boolean;
  /** Validity in ms since the epoch (inclusive both ends, RFC 5280 section 4.1.2.5). */
  readonly notBefore: number;
  readonly notAfter: number;
  /** DER of SubjectPublicKeyInfo. */
  readonly spki: Uint8Array;
}

export const KEY_USAGE = {
  digitalSignature: 1 << 0,
  nonRepudiation: 1 << 1,
  keyEncipherment: 1 << 2,
  dataEncipherment: 1 << 3,
  keyAgreement: 1 << 4,
  keyCertSign: 1 << 5,
  cRLSign: 1 << 6,
  encipherOnly: 1 << 7,
  decipherOnly: 1 << 8,
} as const;

export type KeyUsageName = keyof typeof KEY_USAGE;

/** The names of the bits set in a keyUsage mask, in RFC 5280 order. */
export function keyUsageNames(mask: number | undefined): KeyUsageName[] {
  if (mask === undefined) return [];
  return (Object.keys(KEY_USAGE) as KeyUsageName[]).filter((k) => (mask & KEY_USAGE[k]) !== 0);
}

function malformed(reason: string, cause?: unknown): X509Error {
  return new X509Error("x509_malformed", `x509: malformed certificate: ${reason}`, { cause });
}

/** Reads one DER certificate strictly. Throws X509Error `x509_malformed`. */
export function readCertificate(der: Uint8Array): CertInfo {
  if (!(der instanceof Uint8Array)) throw malformed("not a byte array");
  try {
    return readUnchecked(der);
  } catch (e) {
    if (e instanceof X509Error) throw e;
    if (e instanceof DerError) throw malformed(e.message, e);
    throw malformed("unreadable", e);
  }
}

function readUnchecked(der: Uint8Array): CertInfo {
  const cert = expectTlv(der, 0, der.length, TAG.SEQUENCE, "certificate");
  if (cert.end !== der.length) throw malformed(`${der.length - cert.end} trailing bytes after the certificate`);
  const [tbsT, algT, sigT, extra] = children(der, cert);
  if (tbsT?.tag !== TAG.SEQUENCE || algT?.tag !== TAG.SEQUENCE || sigT === undefined || extra !== undefined) {
    throw malformed("not a Certificate sequence");
  }
  const f = children(der, tbsT);
  let i = 0;
  let version = 1;
  if (f[0]?.tag === 0xa0) {
    const [v, more] = children(der, f[0]);
    if (v === undefined || more !== undefined) throw malformed("bad version");
    version = readSmallUint(der, v) + 1;
    if (version < 2 || version > 3) throw malformed(`unsupported version ${version}`);
    i = 1;
  }
  const need = (t: Tlv | undefined, tag: number, what: string): Tlv => {
    if (t?.tag !== tag) throw malformed(`bad ${what}`);
    return t;
  };
  const serialT = need(f[i], TAG.INTEGER, "serial number");
  const innerAlg = need(f[i + 1], TAG.SEQUENCE, "signature algorithm");
  const issuerT = need(f[i + 2], TAG.SEQUENCE, "issuer");
  const validity = need(f[i + 3], TAG.SEQUENCE, "validity");
  const subjectT = need(f[i + 4], TAG.SEQUENCE, "subject");
  const spkiT = need(f[i + 5], TAG.SEQUENCE, "subject public key info");
  let j = i + 6;
  if (f[j]?.tag === 0x81) j++;
  if (f[j]?.tag === 0x82) j++;
  let extsT: Tlv | undefined;
  if (f[j]?.tag === 0xa3) {
    if (version !== 3) throw malformed("extensions in a certificate that is not v3");
    const [seq, more] = children(der, f[j]!);
    if (seq?.tag !== TAG.SEQUENCE || more !== undefined) throw malformed("bad extensions");
    extsT = seq;
    j++;
  }
  if (j !== f.length) throw malformed("unexpected fields in the TBSCertificate");
  const algDer = whole(der, algT);
  const innerDer = whole(der, innerAlg);
  if (algDer.length !== innerDer.length || !algDer.every((b, k) => b === innerDer[k])) {
    throw malformed("signature algorithm differs between TBSCertificate and Certificate");
  }
  const [algOid] = children(der, algT);
  if (algOid === undefined) throw malformed("bad signature algorithm");
  const [nb, na, moreTimes] = children(der, validity);
  if (nb === undefined || na === undefined || moreTimes !== undefined) throw malformed("bad validity");
  const [spkiAlg, spkiKey, moreKey] = children(der, spkiT);
  if (spkiAlg?.tag !== TAG.SEQUENCE || spkiKey === undefined || moreKey !== undefined) throw malformed("bad public key info");
  readBitString(der, spkiKey);
  readIntegerBytes(der, serialT);
  const sig = readBitString(der, sigT);
  if (sig.unused !== 0) throw malformed("signature has unused bits");
  const ext = readExtensions(der, extsT);
  return Object.freeze({
    der,
    tbs: whole(der, tbsT),
    version,
    serial: value(der, serialT),
    signatureAlgorithm: readOid(der, algOid),
    signatureAlgorithmDer: algDer,
    signature: sig.bits,
    issuer: whole(der, issuerT),
    subject: whole(der, subjectT),
    subjectIsEmpty: subjectT.end === subjectT.valueStart,
    notBefore: readTime(der, nb),
    notAfter: readTime(der, na),
    spki: whole(der, spkiT),
    ...ext,
  });
}

/**
 * The full pkijs Certificate, after `readCertificate` accepted the bytes. Throws X509Error
 * `x509_malformed`, never an asn1js/pkijs exception.
 */
export function parseCertificate(der: Uint8Array): pkijs.Certificate {
  readCertificate(der);
  try {
    const asn = asn1js.fromBER(toArrayBuffer(der));
    if (asn.offset !== der.length) throw malformed("asn1js could not read it");
    return new pkijs.Certificate({ schema: asn.result });
  } catch (e) {
    if (e instanceof X509Error) throw e;
    throw malformed("pkijs could not read it", e);
  }
}

/** The serial number as lowercase hex without a leading zero octet ("" never: at least "00"). */
export function serialHex(info: CertInfo): string {
  const s = info.serial.length > 1 && info.serial[0] === 0 ? info.serial.subarray(1) : info.serial;
  return toHex(s);
}

/** The SHA-256 fingerprint of the DER, lowercase hex with colons (openssl's form, lowercased). */
export async function fingerprintSha256(der: Uint8Array): Promise<string> {
  return toHex(new Uint8Array(await subtle.digest("SHA-256", toArrayBuffer(der))), ":");
}

/** What `tidegate svid inspect` shows of one certificate (display only; nothing is verified). */
export interface CertificateDescription {
  /** The SPIFFE ID when there is exactly one URI SAN and it is a valid SPIFFE ID, else null. */
  readonly spiffeId: string | null;
  readonly trustDomain: string | null;
  readonly subject: string;
  readonly issuer: string;
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** "EC P-256", "RSA 2048", "Ed25519"... */
  readonly keyType: string;
  readonly isCa: boolean;
  readonly uriSans: readonly string[];
  readonly dnsSans: readonly string[];
  readonly keyUsage: readonly KeyUsageName[];
  /** Extended key usage OIDs ("1.3.6.1.5.5.7.3.1"...); empty when absent. */
  readonly extKeyUsage: readonly string[];
  /** SHA-256 of the DER, hex with colons. */
  readonly sha256: string;
}

function text(f: () => string): string {
  try {
    return f();
  } catch {
    return "(unreadable)";
  }
}

/** Describes a certificate. Throws X509Error `x509_malformed` when it does not parse. */
export async function describeCertificate(der: Uint8Array): Promise<CertificateDescription> {
  const info = readCertificate(der);
  let id: SpiffeId | null = null;
  if (info.uriSans.length === 1) {
    try {
      id = SpiffeId.parse(info.uriSans[0]!);
    } catch {
      id = null;
    }
  }
  return {
    spiffeId: id?.toString() ?? null,
    trustDomain: id?.trustDomain.name ?? null,
    subject: text(() => nameToText(info.subject)),
    issuer: text(() => nameToText(info.issuer)),
    serial: serialHex(info),
    notBefore: new Date(info.notBefore),
    notAfter: new Date(info.notAfter),
    keyType: text(() => describeSpki(info.spki).text),
    isCa: info.basicConstraints?.cA === true,
    uriSans: info.uriSans,
    dnsSans: info.dnsSans,
    keyUsage: keyUsageNames(info.keyUsage),
    extKeyUsage: info.extKeyUsage ?? [],
    sha256: await fingerprintSha256(der),
  };
}
