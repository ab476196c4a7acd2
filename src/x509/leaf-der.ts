/**
 * The fast encoder of leaf X.509-SVIDs (see mint.ts for what a leaf holds): the same bytes pkijs
 * writes for the same fields (mint.test.ts checks it), built with der-write.ts in microseconds.
 */
import { subtle } from "./engine.ts";
import { OID } from "./cert-ext.ts";
import { TAG } from "./der.ts";
import { ascii, ecdsaRawToDer, extension, oid, seq, time, tlv, uint } from "./der-write.ts";
import { ECDSA_WITH_SHA256 } from "./mint-pkijs.ts";

export interface LeafFields {
  readonly serial: Uint8Array;
  readonly issuerName: Uint8Array;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly spki: Uint8Array;
  readonly subjectKeyId: Uint8Array;
  readonly authorityKeyId: Uint8Array;
  readonly uri: string;
  readonly dnsNames: readonly string[];
}

const SIG_ALG = seq(oid(ECDSA_WITH_SHA256));
const VERSION_3 = tlv(0xa0, Uint8Array.of(TAG.INTEGER, 1, 2));
const EMPTY_NAME = seq();
const BASIC_CONSTRAINTS = extension(oid(OID.basicConstraints), true, seq());
const KEY_USAGE_DIGITAL_SIGNATURE = extension(oid(OID.keyUsage), true, Uint8Array.of(TAG.BIT_STRING, 2, 7, 0x80));
const EXT_KEY_USAGE = extension(oid(OID.extKeyUsage), false, seq(oid(OID.serverAuth), oid(OID.clientAuth)));
const SAN = oid(OID.subjectAltName);
const SKI = oid(OID.subjectKeyId);
const AKI = oid(OID.authorityKeyId);

export function encodeLeafTbs(f: LeafFields): Uint8Array {
  const names = [ascii(0x86, f.uri), ...f.dnsNames.map((d) => ascii(0x82, d))];
  const extensions = seq(
    BASIC_CONSTRAINTS,
    KEY_USAGE_DIGITAL_SIGNATURE,
    EXT_KEY_USAGE,
    extension(SAN, true, seq(...names)),
    extension(SKI, false, tlv(TAG.OCTET_STRING, f.subjectKeyId)),
    extension(AKI, false, seq(tlv(0x80, f.authorityKeyId))),
  );
  return seq(VERSION_3, uint(f.serial), SIG_ALG, f.issuerName, seq(time(f.notBefore), time(f.notAfter)), EMPTY_NAME, f.spki, tlv(0xa3, extensions));
}

/** Signs a TBSCertificate with ECDSA P-256 / SHA-256 and wraps it into the Certificate. */
export async function signTbs(tbs: Uint8Array, privateKey: CryptoKey): Promise<Uint8Array> {
  const raw = new Uint8Array(await subtle.sign({ name: "ECDSA", hash: "SHA-256" }, privateKey, tbs as Uint8Array<ArrayBuffer>));
  return seq(tbs, SIG_ALG, tlv(TAG.BIT_STRING, Uint8Array.of(0), ecdsaRawToDer(raw)));
}
