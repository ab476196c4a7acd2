/**
 * Minting X.509-SVIDs and their signing certificates, signed through WebCrypto (P-256 ECDSA with
 * SHA-256), following the SPIFFE X509-SVID standard:
 *
 * - Leaf (sections 3.1, 4): exactly one URI SAN, the SPIFFE ID, whose path must be non-empty
 *   (`x509_leaf_id_no_path` otherwise), plus any `dnsNames` (LDH ASCII, else `x509_bad_dns_name`);
 *   basicConstraints cA=false, critical (4.1); keyUsage digitalSignature only, critical (4.3);
 *   extKeyUsage serverAuth + clientAuth (4.4); an empty subject, so the SAN is critical (RFC 5280
 *   section 4.2.1.6); subject and authority key identifiers.
 * - CA (section 3.2): cA=true (optional pathLenConstraint), keyUsage keyCertSign + cRLSign,
 *   critical; URI SAN = the trust domain's ID (no path); a subject naming the trust domain, a
 *   role and the serial, one attribute per RDN.
 * - Plain TLS (no SPIFFE ID), for the agent's interception CA: `createTlsRootCa` is a CA as above
 *   without the URI SAN, subject organization (default "tidegate"), CN and serial;
 *   `mintServerCertificate` a leaf with DNS and IP SANs only (at least one, else `x509_no_names`;
 *   DNS names as above plus "_", else `x509_bad_dns_name`; IPs of 4 or 16 octets, else
 *   `x509_bad_ip_address`), extKeyUsage serverAuth only, otherwise as a leaf above.
 * - Every certificate: a random positive 126-bit serial (16 octets, crypto.getRandomValues),
 *   validity from `now - BACKDATE_SECONDS` (clock skew, as SPIRE does) to `now + ttlSeconds`
 *   (a positive whole number, else `x509_bad_ttl`), the end capped at the signer's notAfter;
 *   the SKI is RFC 7093 method 1 (SHA-256 of the key bits, 20 octets). `now` is always the
 *   caller's: the clock is never read here.
 *
 * CA certificates and TLS server leaves are built with pkijs (mint-pkijs.ts). SVID leaves, minted
 * at volume, are encoded by leaf-der.ts, which writes the same bytes pkijs does (tested) a hundred
 * times faster.
 */
import type { SpiffeId } from "../spiffe/id.ts";
import type { TrustDomain } from "../spiffe/trust-domain.ts";
import { subtle, webcrypto } from "./engine.ts";
import { toHex } from "./encoding.ts";
import { DerError, TAG, children, expectTlv, readBitString } from "./der.ts";
import { readCertificate } from "./cert.ts";
import { exportSpki, generateKeyPair } from "./keys.ts";
import { caExtensions, pkijsCertificate, serverLeafExtensions, signPkijs, type CertSpec } from "./mint-pkijs.ts";
import { encodeLeafTbs, signTbs } from "./leaf-der.ts";
import { X509Error, quote } from "./x509-errors.ts";

/** Who signs: the issuing CA's certificate (DER) and its private key. */
export interface Signer {
  readonly certificate: Uint8Array;
  readonly privateKey: CryptoKey;
}

export interface MintedCertificate {
  readonly der: Uint8Array;
  /** Lowercase hex. */
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export interface RootCa extends MintedCertificate {
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
}

export const BACKDATE_SECONDS = 10;

/** 16 random octets, top bit clear and second bit set: positive, minimal, 126 bits of entropy. */
export function randomSerial(): Uint8Array {
  const s = webcrypto.getRandomValues(new Uint8Array(16));
  s[0] = (s[0]! & 0x3f) | 0x40;
  return s;
}

/** SKI: the first 20 octets of SHA-256 over the subjectPublicKey bits (RFC 7093 section 2, method 1). */
export async function keyIdentifier(spki: Uint8Array): Promise<Uint8Array> {
  let bits: Uint8Array;
  try {
    const seq = expectTlv(spki, 0, spki.length, TAG.SEQUENCE, "spki");
    const [, key] = children(spki, seq);
    if (key === undefined || seq.end !== spki.length) throw new DerError("bad spki");
    bits = readBitString(spki, key).bits;
  } catch (e) {
    throw new X509Error("key_malformed", "x509: malformed public key info", { cause: e });
  }
  return new Uint8Array(await subtle.digest("SHA-256", bits as Uint8Array<ArrayBuffer>)).subarray(0, 20);
}

function checkTtl(ttlSeconds: number): void {
  if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds <= 0) {
    throw new X509Error("x509_bad_ttl", `x509: ttl must be a positive whole number of seconds, got ${ttlSeconds}`);
  }
}

/** Validity from `now` for `ttlSeconds`, whole seconds, the end capped at the signer's notAfter. */
function validity(now: Date, ttlSeconds: number, capMs = Infinity): { notBefore: number; notAfter: number } {
  checkTtl(ttlSeconds);
  const t = Math.floor(now.getTime() / 1000) * 1000;
  if (!Number.isFinite(t)) throw new X509Error("x509_bad_ttl", "x509: now is not a valid date");
  return { notBefore: t - BACKDATE_SECONDS * 1000, notAfter: Math.min(t + ttlSeconds * 1000, capMs) };
}

interface IssuerInfo {
  readonly name: Uint8Array;
  readonly keyId: Uint8Array;
  readonly notAfter: number;
}

/** The signer's certificate read once per DER object: its subject, key identifier, notAfter. */
const issuerCache = new WeakMap<Uint8Array, Promise<IssuerInfo>>();

function issuerOf(signer: Signer): Promise<IssuerInfo> {
  let p = issuerCache.get(signer.certificate);
  if (p === undefined) {
    p = (async () => {
      const info = readCertificate(signer.certificate);
      return { name: info.subject, keyId: info.subjectKeyId ?? (await keyIdentifier(info.spki)), notAfter: info.notAfter };
    })();
    issuerCache.set(signer.certificate, p);
    p.catch(() => issuerCache.delete(signer.certificate));
  }
  return p;
}

function minted(der: Uint8Array, serial: Uint8Array, v: { notBefore: number; notAfter: number }): MintedCertificate {
  return { der, serial: toHex(serial), notBefore: new Date(v.notBefore), notAfter: new Date(v.notAfter) };
}

async function buildWithPkijs(spec: Omit<CertSpec, "subjectKeyId">, key: CryptoKey): Promise<MintedCertificate> {
  const der = await signPkijs(pkijsCertificate({ ...spec, subjectKeyId: await keyIdentifier(spec.spki) }), key);
  return minted(der, spec.serial, spec);
}

/** A self-signed CA: `uri`, the SPIFFE ID it carries as its one SAN, or none for plain TLS. */
async function selfSignedCa(o: { organization: string; commonName: string; uri: string | undefined; ttlSeconds: number; now: Date; keyPair?: CryptoKeyPair; pathLen?: number }): Promise<RootCa> {
  const v = validity(o.now, o.ttlSeconds);
  const kp = o.keyPair ?? (await generateKeyPair());
  const spki = await exportSpki(kp.publicKey);
  const serial = randomSerial();
  const cert = await buildWithPkijs(
    {
      subject: [
        ["2.5.4.10", o.organization],
        ["2.5.4.3", o.commonName],
        ["2.5.4.5", toHex(serial)],
      ],
      issuerName: undefined,
      spki,
      authorityKeyId: await keyIdentifier(spki),
      serial,
      ...v,
      extensions: caExtensions(o.uri, o.pathLen),
    },
    kp.privateKey,
  );
  return { ...cert, privateKey: kp.privateKey, publicKey: kp.publicKey };
}

/** A self-signed root CA for `trustDomain` (a new P-256 key pair unless `keyPair` is given). */
export async function createRootCa(opts: {
  trustDomain: TrustDomain;
  ttlSeconds: number;
  now: Date;
  keyPair?: CryptoKeyPair;
  subject?: { commonName?: string; organization?: string };
  pathLen?: number;
}): Promise<RootCa> {
  return selfSignedCa({
    organization: opts.subject?.organization ?? opts.trustDomain.name,
    commonName: opts.subject?.commonName ?? "tidegate root CA",
    uri: opts.trustDomain.idString(),
    ttlSeconds: opts.ttlSeconds,
    now: opts.now,
    ...(opts.keyPair !== undefined ? { keyPair: opts.keyPair } : {}),
    ...(opts.pathLen !== undefined ? { pathLen: opts.pathLen } : {}),
  });
}

/** An intermediate (signing) CA certificate for `publicKey`, issued by `signer`. */
export async function createIntermediateCa(opts: {
  trustDomain: TrustDomain;
  publicKey: CryptoKey;
  signer: Signer;
  ttlSeconds: number;
  now: Date;
  pathLen?: number;
}): Promise<MintedCertificate> {
  const issuer = await issuerOf(opts.signer);
  const serial = randomSerial();
  return buildWithPkijs(
    {
      subject: [
        ["2.5.4.10", opts.trustDomain.name],
        ["2.5.4.3", "tidegate intermediate CA"],
        ["2.5.4.5", toHex(serial)],
      ],
      issuerName: issuer.name,
      spki: await exportSpki(opts.publicKey),
      authorityKeyId: issuer.keyId,
      serial,
      ...validity(opts.now, opts.ttlSeconds, issuer.notAfter),
      extensions: caExtensions(opts.trustDomain.idString(), opts.pathLen),
    },
    opts.signer.privateKey,
  );
}

const DNS_NAME = /^(?=.{1,253}$)(\*\.)?([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** An X.509-SVID for `id` and `publicKey` (a CryptoKey or SPKI DER), issued by `signer`. */
export async function mintX509Svid(opts: {
  id: SpiffeId;
  publicKey: CryptoKey | Uint8Array;
  signer: Signer;
  ttlSeconds: number;
  now: Date;
  dnsNames?: readonly string[];
}): Promise<MintedCertificate> {
  if (opts.id.path === "") {
    throw new X509Error("x509_leaf_id_no_path", `x509: a leaf SPIFFE ID needs a path, got ${quote(opts.id.toString())}`);
  }
  const dnsNames = opts.dnsNames ?? [];
  for (const d of dnsNames) if (!DNS_NAME.test(d)) throw new X509Error("x509_bad_dns_name", `x509: bad DNS name ${quote(d)}`);
  const issuer = await issuerOf(opts.signer);
  const spki = opts.publicKey instanceof Uint8Array ? opts.publicKey : await exportSpki(opts.publicKey);
  const serial = randomSerial();
  const v = validity(opts.now, opts.ttlSeconds, issuer.notAfter);
  const tbs = encodeLeafTbs({
    serial,
    issuerName: issuer.name,
    ...v,
    spki,
    subjectKeyId: await keyIdentifier(spki),
    authorityKeyId: issuer.keyId,
    uri: opts.id.toString(),
    dnsNames,
  });
  return minted(await signTbs(tbs, opts.signer.privateKey), serial, v);
}

/** A self-signed CA for plain TLS, with no SPIFFE ID (a new P-256 key pair unless `keyPair` is given). */
export async function createTlsRootCa(opts: {
  commonName: string;
  organization?: string;
  ttlSeconds: number;
  now: Date;
  keyPair?: CryptoKeyPair;
  pathLen?: number;
}): Promise<RootCa> {
  return selfSignedCa({ ...opts, organization: opts.organization ?? "tidegate", uri: undefined });
}

/** DNS_NAME with "_" allowed in labels, as real host names have it (TLS clients match it). */
const SERVER_DNS_NAME = /^(?=.{1,253}$)(\*\.)?([A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)(\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*$/;

/** A TLS server certificate for `dnsNames` and `ipAddresses` (4 or 16 octets each), issued by `signer`. */
export async function mintServerCertificate(opts: {
  publicKey: CryptoKey | Uint8Array;
  signer: Signer;
  ttlSeconds: number;
  now: Date;
  dnsNames?: readonly string[];
  ipAddresses?: readonly Uint8Array[];
}): Promise<MintedCertificate> {
  const dnsNames = opts.dnsNames ?? [];
  const ips = opts.ipAddresses ?? [];
  if (dnsNames.length + ips.length === 0) throw new X509Error("x509_no_names", "x509: a server certificate needs a DNS name or an IP address");
  for (const d of dnsNames) if (!SERVER_DNS_NAME.test(d)) throw new X509Error("x509_bad_dns_name", `x509: bad DNS name ${quote(d)}`);
  for (const ip of ips) {
    if (ip.length !== 4 && ip.length !== 16) throw new X509Error("x509_bad_ip_address", `x509: an IP address of ${ip.length} octets (want 4 or 16)`);
  }
  const issuer = await issuerOf(opts.signer);
  const spki = opts.publicKey instanceof Uint8Array ? opts.publicKey : await exportSpki(opts.publicKey);
  const serial = randomSerial();
  return buildWithPkijs(
    {
      subject: [],
      issuerName: issuer.name,
      spki,
      authorityKeyId: issuer.keyId,
      serial,
      ...validity(opts.now, opts.ttlSeconds, issuer.notAfter),
      extensions: serverLeafExtensions(dnsNames, ips),
    },
    opts.signer.privateKey,
  );
}
