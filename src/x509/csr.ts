/**
 * PKCS#10 certificate signing requests (RFC 2986) for X.509-SVIDs.
 *
 * The requester makes one with `createCsr` (its private key only signs, it never leaves). The CA
 * side reads it with `parseCsr`, which CHECKS the self-signature, and mints with `signCsr`.
 * Rejected, each a CsrError with its code:
 * - `csr_malformed`: not one DER CertificationRequest (trailing bytes included), version not 0,
 *   malformed attributes or requested extensions, an ECDSA signature algorithm with parameters
 *   (RFC 5758 section 3.2);
 * - `csr_unsupported_key`: a key other than EC P-256 (RSA of any size, P-192, P-384, Ed25519...);
 * - `csr_unsupported_algorithm`: a signature algorithm other than ECDSA with SHA-256/384/512;
 * - `csr_bad_signature`: the CSR is not signed by the key it carries;
 * - `csr_id_mismatch` (signCsr): the CSR's URI SAN is not the SPIFFE ID being issued;
 * - `csr_extra_san` (signCsr): more than one URI SAN, a DNS SAN not among `dnsNames`, or any
 *   other SAN type;
 * - `csr_requests_ca` (signCsr): a basicConstraints request with cA=true, or keyCertSign/cRLSign.
 * The subject and any other requested extension are ignored: the leaf is built from `id` only.
 */
import * as pkijs from "pkijs";
import type { SpiffeId } from "../spiffe/id.ts";
import { subtle } from "./engine.ts";
import { toArrayBuffer } from "./encoding.ts";
import { DerError, TAG, children, expectTlv, readBitString, readOid, readSmallUint, whole, type Tlv } from "./der.ts";
import { OID, readExtensions, type ExtensionFields } from "./cert-ext.ts";
import { KEY_USAGE } from "./cert.ts";
import { describeSpki, EC_P256 } from "./keys.ts";
import { ecdsaDerToRaw } from "./signature.ts";
import { mintX509Svid, type MintedCertificate, type Signer } from "./mint.ts";
import { CsrError, quote } from "./x509-errors.ts";

const OID_EXTENSION_REQUEST = "1.2.840.113549.1.9.14";
const ECDSA_HASHES: Readonly<Record<string, string>> = {
  "1.2.840.10045.4.3.2": "SHA-256",
  "1.2.840.10045.4.3.3": "SHA-384",
  "1.2.840.10045.4.3.4": "SHA-512",
};

/** A CSR for `publicKey`, signed by `privateKey`, asking for `id` as URI SAN when given. DER. */
export async function createCsr(opts: { privateKey: CryptoKey; publicKey: CryptoKey; id?: SpiffeId }): Promise<Uint8Array> {
  const req = new pkijs.CertificationRequest();
  await req.subjectPublicKeyInfo.importKey(opts.publicKey);
  if (opts.id !== undefined) {
    const san = new pkijs.GeneralNames({ names: [new pkijs.GeneralName({ type: 6, value: opts.id.toString() })] });
    const exts = new pkijs.Extensions({
      extensions: [new pkijs.Extension({ extnID: OID.subjectAltName, critical: true, extnValue: san.toSchema().toBER(false) })],
    });
    req.attributes = [new pkijs.Attribute({ type: OID_EXTENSION_REQUEST, values: [exts.toSchema()] })];
  }
  await req.sign(opts.privateKey, "SHA-256");
  return new Uint8Array(req.toSchema(true).toBER(false));
}

export interface ParsedCsr {
  readonly der: Uint8Array;
  /** The requester's public key, imported for ECDSA verify. */
  readonly publicKey: CryptoKey;
  /** DER SubjectPublicKeyInfo. */
  readonly spki: Uint8Array;
  readonly uriSans: readonly string[];
  readonly dnsSans: readonly string[];
  readonly otherSanCount: number;
  /** A basicConstraints request with cA=true, or keyCertSign / cRLSign in a keyUsage request. */
  readonly requestsCa: boolean;
  /** Every requested extension, read as in a certificate. */
  readonly extensions: ExtensionFields;
}

function malformed(reason: string, cause?: unknown): CsrError {
  return new CsrError("csr_malformed", `csr: malformed certificate signing request: ${reason}`, { cause });
}

interface CsrParts {
  info: Tlv;
  spki: Tlv;
  algOid: string;
  /** The signature AlgorithmIdentifier has parameters (ECDSA's must not, RFC 5758 section 3.2). */
  algParameters: boolean;
  signature: Uint8Array;
  extensions: ExtensionFields;
}

function readParts(der: Uint8Array): CsrParts {
  const top = expectTlv(der, 0, der.length, TAG.SEQUENCE, "csr");
  if (top.end !== der.length) throw malformed(`${der.length - top.end} trailing bytes after the request`);
  const [info, alg, sig, extra] = children(der, top);
  if (info?.tag !== TAG.SEQUENCE || alg?.tag !== TAG.SEQUENCE || sig === undefined || extra !== undefined) throw malformed("not a CertificationRequest");
  const [version, subject, spki, attrs, more] = children(der, info);
  if (version === undefined || readSmallUint(der, version) !== 0) throw malformed("version is not 0");
  if (subject?.tag !== TAG.SEQUENCE || spki?.tag !== TAG.SEQUENCE || more !== undefined) throw malformed("bad CertificationRequestInfo");
  let extsTlv: Tlv | undefined;
  if (attrs !== undefined) {
    if (attrs.tag !== 0xa0) throw malformed("bad attributes");
    for (const a of children(der, attrs)) {
      const [type, values, rest] = children(der, a);
      if (a.tag !== TAG.SEQUENCE || type === undefined || values?.tag !== TAG.SET || rest !== undefined) throw malformed("bad attribute");
      if (readOid(der, type) !== OID_EXTENSION_REQUEST) continue;
      const [exts, second] = children(der, values);
      if (extsTlv !== undefined || exts?.tag !== TAG.SEQUENCE || second !== undefined) throw malformed("bad extensionRequest");
      extsTlv = exts;
    }
  }
  const [algOidT, algParams] = children(der, alg);
  if (algOidT === undefined) throw malformed("bad signature algorithm");
  const bits = readBitString(der, sig);
  if (bits.unused !== 0) throw malformed("signature has unused bits");
  return { info, spki, algOid: readOid(der, algOidT), algParameters: algParams !== undefined, signature: bits.bits, extensions: readExtensions(der, extsTlv) };
}

/** Reads a CSR and checks its self-signature. Throws CsrError (codes above). */
export async function parseCsr(der: Uint8Array): Promise<ParsedCsr> {
  if (!(der instanceof Uint8Array)) throw malformed("not a byte array");
  let p: CsrParts;
  try {
    p = readParts(der);
  } catch (e) {
    if (e instanceof CsrError) throw e;
    throw malformed(e instanceof DerError ? e.message : "unreadable", e);
  }
  const spki = whole(der, p.spki);
  let keyText: string;
  try {
    keyText = describeSpki(spki).text;
  } catch (e) {
    throw malformed("bad public key info", e);
  }
  if (keyText !== "EC P-256") throw new CsrError("csr_unsupported_key", `csr: key is ${keyText}, only EC P-256 is accepted`);
  const hash = ECDSA_HASHES[p.algOid];
  if (hash === undefined) throw new CsrError("csr_unsupported_algorithm", `csr: signature algorithm ${p.algOid} is not ECDSA with SHA-2`);
  if (p.algParameters) throw malformed(`signature algorithm ${p.algOid} has parameters (RFC 5758 section 3.2: they must be absent)`);
  let publicKey: CryptoKey;
  try {
    publicKey = await subtle.importKey("spki", toArrayBuffer(spki), EC_P256, true, ["verify"]);
  } catch (e) {
    throw malformed("public key does not import as EC P-256", e);
  }
  const raw = ecdsaDerToRaw(p.signature, 32);
  let ok = false;
  if (raw !== null) {
    try {
      ok = await subtle.verify({ name: "ECDSA", hash }, publicKey, raw as Uint8Array<ArrayBuffer>, whole(der, p.info) as Uint8Array<ArrayBuffer>);
    } catch (e) {
      // Some engines (Deno) import an off-curve point and only fail here.
      throw malformed("public key is not a valid EC P-256 point", e);
    }
  }
  if (!ok) throw new CsrError("csr_bad_signature", "csr: the request is not signed by the key it carries");
  const x = p.extensions;
  const ku = x.keyUsage ?? 0;
  return {
    der,
    publicKey,
    spki,
    uriSans: x.uriSans,
    dnsSans: x.dnsSans,
    otherSanCount: x.otherSanCount,
    requestsCa: x.basicConstraints?.cA === true || (ku & (KEY_USAGE.keyCertSign | KEY_USAGE.cRLSign)) !== 0,
    extensions: x,
  };
}

/** Checks `csr` and mints the X.509-SVID for `id` with the CSR's key (see mintX509Svid). */
export async function signCsr(opts: {
  csr: Uint8Array;
  id: SpiffeId;
  signer: Signer;
  ttlSeconds: number;
  now: Date;
  dnsNames?: readonly string[];
}): Promise<MintedCertificate> {
  const csr = await parseCsr(opts.csr);
  if (csr.requestsCa) throw new CsrError("csr_requests_ca", "csr: the request asks for a CA certificate");
  if (csr.uriSans.length > 1) throw new CsrError("csr_extra_san", `csr: the request has ${csr.uriSans.length} URI SANs`);
  const uri = csr.uriSans[0];
  if (uri !== undefined && uri !== opts.id.toString()) {
    throw new CsrError("csr_id_mismatch", `csr: the request asks for ${quote(uri)}, not ${quote(opts.id.toString())}`);
  }
  const extraDns = csr.dnsSans.find((d) => !(opts.dnsNames ?? []).includes(d));
  if (extraDns !== undefined) throw new CsrError("csr_extra_san", `csr: DNS SAN ${quote(extraDns)} is not allowed for this SVID`);
  if (csr.otherSanCount > 0) throw new CsrError("csr_extra_san", "csr: the request has SANs other than URI and DNS");
  return mintX509Svid({
    id: opts.id,
    publicKey: csr.spki,
    signer: opts.signer,
    ttlSeconds: opts.ttlSeconds,
    now: opts.now,
    ...(opts.dnsNames !== undefined ? { dnsNames: opts.dnsNames } : {}),
  });
}

