/**
 * Building certificates with pkijs (CA certificates, and the reference encoding the fast leaf
 * encoder in leaf-der.ts is tested against). Field choices are documented in mint.ts.
 */
import * as asn1js from "asn1js";
import * as pkijs from "pkijs";
import { toArrayBuffer } from "./encoding.ts";
import { OID } from "./cert-ext.ts";

export const ECDSA_WITH_SHA256 = "1.2.840.10045.4.3.2";

export interface CertSpec {
  /** [attribute type OID, value] in order, one per RDN; [] for the empty Name. */
  readonly subject: readonly (readonly [string, string])[];
  /** DER of the issuer's subject Name; undefined for a self-signed certificate. */
  readonly issuerName: Uint8Array | undefined;
  readonly spki: Uint8Array;
  readonly subjectKeyId: Uint8Array;
  readonly authorityKeyId: Uint8Array;
  readonly serial: Uint8Array;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly extensions: pkijs.Extension[];
}

export function time(ms: number): pkijs.Time {
  const d = new Date(Math.floor(ms / 1000) * 1000);
  return new pkijs.Time({ type: d.getUTCFullYear() >= 2050 ? 1 : 0, value: d });
}

export function ext(extnID: string, critical: boolean, value: asn1js.BaseBlock | { toSchema(): asn1js.BaseBlock }): pkijs.Extension {
  const ber = "toSchema" in value ? value.toSchema().toBER(false) : value.toBER(false);
  return new pkijs.Extension({ extnID, critical, extnValue: ber });
}

/** keyUsage as a DER BIT STRING (trailing zero bits dropped, X.690 section 11.2.2). */
export function keyUsageBits(bits: readonly number[]): asn1js.BitString {
  const last = Math.max(...bits);
  const bytes = new Uint8Array((last >> 3) + 1);
  for (const b of bits) bytes[b >> 3]! |= 0x80 >> (b & 7);
  return new asn1js.BitString({ valueHex: bytes, unusedBits: 7 - (last & 7) });
}

export function sanOf(uri: string, dnsNames: readonly string[]): pkijs.AltName {
  return new pkijs.AltName({
    altNames: [new pkijs.GeneralName({ type: 6, value: uri }), ...dnsNames.map((d) => new pkijs.GeneralName({ type: 2, value: d }))],
  });
}

export function caExtensions(tdId: string | undefined, pathLen?: number): pkijs.Extension[] {
  const bc = new pkijs.BasicConstraints(pathLen === undefined ? { cA: true } : { cA: true, pathLenConstraint: pathLen });
  const out = [ext(OID.basicConstraints, true, bc), ext(OID.keyUsage, true, keyUsageBits([5, 6]))];
  return tdId === undefined ? out : [...out, ext(OID.subjectAltName, false, sanOf(tdId, []))];
}

/** A TLS server leaf: cA=false, digitalSignature, serverAuth, DNS ([2]) then IP ([7]) SANs, critical. */
export function serverLeafExtensions(dnsNames: readonly string[], ipAddresses: readonly Uint8Array[]): pkijs.Extension[] {
  const names = [
    ...dnsNames.map((d) => new pkijs.GeneralName({ type: 2, value: d })),
    ...ipAddresses.map((ip) => new pkijs.GeneralName({ type: 7, value: new asn1js.OctetString({ valueHex: ip.slice() }) })),
  ];
  return [
    ext(OID.basicConstraints, true, new pkijs.BasicConstraints({ cA: false })),
    ext(OID.keyUsage, true, keyUsageBits([0])),
    ext(OID.extKeyUsage, false, new pkijs.ExtKeyUsage({ keyPurposes: [OID.serverAuth] })),
    ext(OID.subjectAltName, true, new pkijs.AltName({ altNames: names })),
  ];
}

export function leafExtensions(uri: string, dnsNames: readonly string[]): pkijs.Extension[] {
  return [
    ext(OID.basicConstraints, true, new pkijs.BasicConstraints({ cA: false })),
    ext(OID.keyUsage, true, keyUsageBits([0])),
    ext(OID.extKeyUsage, false, new pkijs.ExtKeyUsage({ keyPurposes: [OID.serverAuth, OID.clientAuth] })),
    ext(OID.subjectAltName, true, sanOf(uri, dnsNames)),
  ];
}

/**
 * A Name with one attribute per RDN, in the given order (pkijs would put them all in one
 * multi-valued RDN); `[]` gives the empty Name `30 00`, not a Name holding an empty RDN.
 */
export function encodeName(attrs: readonly (readonly [string, string])[]): ArrayBuffer {
  const rdns = attrs.map(([type, value]) => {
    const v = type === "2.5.4.5" ? new asn1js.PrintableString({ value }) : new asn1js.Utf8String({ value });
    return new asn1js.Set({ value: [new pkijs.AttributeTypeAndValue({ type, value: v }).toSchema()] });
  });
  return new asn1js.Sequence({ value: rdns }).toBER(false);
}

/** The unsigned certificate (its `signature` algorithm set to ecdsa-with-SHA256). */
export function pkijsCertificate(spec: CertSpec): pkijs.Certificate {
  const cert = new pkijs.Certificate();
  cert.version = 2;
  cert.serialNumber = new asn1js.Integer({ valueHex: spec.serial });
  cert.signature = new pkijs.AlgorithmIdentifier({ algorithmId: ECDSA_WITH_SHA256 });
  const subject = encodeName(spec.subject);
  cert.subject = new pkijs.RelativeDistinguishedNames({ valueBeforeDecode: subject });
  cert.issuer = new pkijs.RelativeDistinguishedNames({
    valueBeforeDecode: spec.issuerName === undefined ? subject : toArrayBuffer(spec.issuerName.slice()),
  });
  cert.notBefore = time(spec.notBefore);
  cert.notAfter = time(spec.notAfter);
  cert.subjectPublicKeyInfo = pkijs.PublicKeyInfo.fromBER(toArrayBuffer(spec.spki));
  cert.extensions = [
    ...spec.extensions,
    ext(OID.subjectKeyId, false, new asn1js.OctetString({ valueHex: spec.subjectKeyId })),
    ext(OID.authorityKeyId, false, new pkijs.AuthorityKeyIdentifier({ keyIdentifier: new asn1js.OctetString({ valueHex: spec.authorityKeyId }) })),
  ];
  return cert;
}

/** Signs with ECDSA P-256 / SHA-256 through WebCrypto and returns the DER certificate. */
export async function signPkijs(cert: pkijs.Certificate, privateKey: CryptoKey): Promise<Uint8Array> {
  await cert.sign(privateKey, "SHA-256");
  return new Uint8Array(cert.toSchema(true).toBER(false));
}
