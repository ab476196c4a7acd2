/**
 * An in-memory test PKI built with the real minting code (src/x509/mint.ts), for the tests of
 * every module that needs SVIDs (STYLE.md point 7). Portable: no runtime-specific API, so the
 * tests of the portable core use it under Bun and Deno alike.
 *
 *   const ca = await createTestCa();                       // example.org, valid around now
 *   const leaf = await ca.mintLeaf("/workload");           // {der, privateKey, chain, id}
 *   await verifyX509Svid(leaf.chain, ca.bundle, { now });  // chain = [leaf, ...intermediates]
 *   const inter = await ca.mintIntermediate();             // a CA below the root that mints too
 *
 * `mintCustom` builds deliberately broken certificates with pkijs directly (any SANs, any
 * basicConstraints/keyUsage, any validity), signed by this CA, for the verifier's rejection tests.
 */
import * as asn1js from "asn1js";
import * as pkijs from "pkijs";
import { SpiffeId } from "../../src/spiffe/id.ts";
import { TrustDomain } from "../../src/spiffe/trust-domain.ts";
import { readCertificate } from "../../src/x509/cert.ts";
import { createIntermediateCa, createRootCa, keyIdentifier, mintX509Svid, randomSerial, type Signer } from "../../src/x509/mint.ts";
import { exportSpki, generateKeyPair } from "../../src/x509/keys.ts";
import { toArrayBuffer } from "../../src/x509/encoding.ts";
import type { X509BundleSource } from "../../src/x509/verify.ts";

export interface TestLeaf {
  readonly id: SpiffeId;
  readonly der: Uint8Array;
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
  /** The leaf then the intermediates up to (not including) the root: what a workload presents. */
  readonly chain: Uint8Array[];
}

export interface LeafOptions {
  now?: Date;
  ttlSeconds?: number;
  dnsNames?: string[];
  keyPair?: CryptoKeyPair;
}

/** Everything about a custom (possibly invalid) certificate; unset fields get valid-leaf values. */
export interface CustomCertOptions {
  uris?: string[];
  dnsNames?: string[];
  /** undefined: cA=false; null: no basicConstraints extension. */
  cA?: boolean | null;
  pathLen?: number;
  /** RFC 5280 KeyUsage bit numbers (0 = digitalSignature, 5 = keyCertSign, 6 = cRLSign); null: no extension. */
  keyUsage?: number[] | null;
  notBefore?: Date;
  notAfter?: Date;
  /** Extra extensions, e.g. an unknown critical one. */
  extensions?: pkijs.Extension[];
  keyPair?: CryptoKeyPair;
  /** Sign with this key instead of the CA's (a bad signature). */
  signingKey?: CryptoKey;
  /** Use this issuer name instead of the CA's subject (an unknown issuer). */
  issuerCommonName?: string;
  subjectCommonName?: string;
}

export interface TestAuthority {
  readonly trustDomain: TrustDomain;
  readonly der: Uint8Array;
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
  readonly signer: Signer;
  /** This CA and its parents below the root (empty for the root). */
  readonly intermediates: Uint8Array[];
  mintLeaf(idOrPath: string | SpiffeId, opts?: LeafOptions): Promise<TestLeaf>;
  mintIntermediate(opts?: { now?: Date; ttlSeconds?: number; pathLen?: number }): Promise<TestAuthority>;
  mintCustom(opts?: CustomCertOptions): Promise<{ der: Uint8Array; privateKey: CryptoKey; chain: Uint8Array[] }>;
  /** A custom certificate (e.g. an intermediate with cA=false) that can itself mint, as a CA. */
  mintCustomAuthority(opts?: CustomCertOptions): Promise<TestAuthority>;
}

export interface TestCa extends TestAuthority {
  readonly root: { readonly der: Uint8Array; readonly privateKey: CryptoKey; readonly publicKey: CryptoKey };
  /** Trusts this CA's root for its trust domain only. */
  readonly bundle: X509BundleSource;
}

function authorityOf(td: TrustDomain, der: Uint8Array, kp: CryptoKeyPair, parents: Uint8Array[], defaults: { now: Date; ttlSeconds: number }): TestAuthority {
  const signer: Signer = { certificate: der, privateKey: kp.privateKey };
  const self: TestAuthority = {
    trustDomain: td,
    der,
    privateKey: kp.privateKey,
    publicKey: kp.publicKey,
    signer,
    intermediates: parents,
    async mintLeaf(idOrPath, opts = {}) {
      const id = typeof idOrPath !== "string" ? idOrPath : idOrPath.startsWith("spiffe://") ? SpiffeId.parse(idOrPath) : SpiffeId.fromPath(td, idOrPath);
      const keys = opts.keyPair ?? (await generateKeyPair({ extractable: true }));
      const leaf = await mintX509Svid({
        id,
        publicKey: keys.publicKey,
        signer,
        ttlSeconds: opts.ttlSeconds ?? 3600,
        now: opts.now ?? defaults.now,
        ...(opts.dnsNames !== undefined ? { dnsNames: opts.dnsNames } : {}),
      });
      return { id, der: leaf.der, privateKey: keys.privateKey, publicKey: keys.publicKey, chain: [leaf.der, ...parents] };
    },
    async mintIntermediate(opts = {}) {
      const keys = await generateKeyPair({ extractable: true });
      const inter = await createIntermediateCa({
        trustDomain: td,
        publicKey: keys.publicKey,
        signer,
        ttlSeconds: opts.ttlSeconds ?? defaults.ttlSeconds,
        now: opts.now ?? defaults.now,
        ...(opts.pathLen !== undefined ? { pathLen: opts.pathLen } : {}),
      });
      return authorityOf(td, inter.der, keys, [inter.der, ...parents], defaults);
    },
    async mintCustom(opts = {}) {
      const c = await buildCustom(td, signer, kp, opts, defaults.now);
      return { der: c.der, privateKey: c.keys.privateKey, chain: [c.der, ...parents] };
    },
    async mintCustomAuthority(opts = {}) {
      const c = await buildCustom(td, signer, kp, { uris: [td.idString()], cA: true, keyUsage: [5, 6], ...opts }, defaults.now);
      return authorityOf(td, c.der, c.keys, [c.der, ...parents], defaults);
    },
  };
  return self;
}

function ext(extnID: string, critical: boolean, value: { toBER(s?: boolean): ArrayBuffer }): pkijs.Extension {
  return new pkijs.Extension({ extnID, critical, extnValue: value.toBER(false) });
}

function cn(name: string): pkijs.RelativeDistinguishedNames {
  const rdn = new pkijs.RelativeDistinguishedNames();
  rdn.typesAndValues.push(new pkijs.AttributeTypeAndValue({ type: "2.5.4.3", value: new asn1js.Utf8String({ value: name }) }));
  return rdn;
}

async function buildCustom(td: TrustDomain, signer: Signer, caKeys: CryptoKeyPair, o: CustomCertOptions, now: Date) {
  const keys = o.keyPair ?? (await generateKeyPair({ extractable: true }));
  const issuer = readCertificate(signer.certificate);
  const cert = new pkijs.Certificate();
  cert.version = 2;
  cert.serialNumber = new asn1js.Integer({ valueHex: randomSerial() });
  cert.issuer = o.issuerCommonName !== undefined ? cn(o.issuerCommonName) : new pkijs.RelativeDistinguishedNames({ valueBeforeDecode: toArrayBuffer(issuer.subject.slice()) });
  cert.subject = cn(o.subjectCommonName ?? `custom test certificate ${Math.random().toString(36).slice(2)}`);
  cert.notBefore = new pkijs.Time({ type: 0, value: o.notBefore ?? new Date(now.getTime() - 60_000) });
  cert.notAfter = new pkijs.Time({ type: 0, value: o.notAfter ?? new Date(now.getTime() + 3600_000) });
  const spki = await exportSpki(keys.publicKey);
  cert.subjectPublicKeyInfo = pkijs.PublicKeyInfo.fromBER(toArrayBuffer(spki));
  const exts: pkijs.Extension[] = [];
  if (o.cA !== null) {
    const bc = new pkijs.BasicConstraints(o.pathLen !== undefined ? { cA: o.cA ?? false, pathLenConstraint: o.pathLen } : { cA: o.cA ?? false });
    exts.push(ext("2.5.29.19", true, bc.toSchema()));
  }
  const ku = o.keyUsage === undefined ? [0] : o.keyUsage;
  if (ku !== null) {
    const bytes = new Uint8Array(2);
    for (const b of ku) bytes[b >> 3]! |= 0x80 >> (b & 7);
    exts.push(ext("2.5.29.15", true, new asn1js.BitString({ valueHex: ku.some((b) => b > 7) ? bytes : bytes.subarray(0, 1) })));
  }
  const names = [...(o.uris ?? [SpiffeId.fromPath(td, "/custom").toString()]).map((u) => new pkijs.GeneralName({ type: 6, value: u })), ...(o.dnsNames ?? []).map((d) => new pkijs.GeneralName({ type: 2, value: d }))];
  if (names.length > 0) exts.push(ext("2.5.29.17", false, new pkijs.AltName({ altNames: names }).toSchema()));
  exts.push(ext("2.5.29.14", false, new asn1js.OctetString({ valueHex: await keyIdentifier(spki) })));
  if (o.issuerCommonName === undefined && issuer.subjectKeyId !== undefined) {
    exts.push(ext("2.5.29.35", false, new pkijs.AuthorityKeyIdentifier({ keyIdentifier: new asn1js.OctetString({ valueHex: issuer.subjectKeyId }) }).toSchema()));
  }
  cert.extensions = [...exts, ...(o.extensions ?? [])];
  await cert.sign(o.signingKey ?? caKeys.privateKey, "SHA-256");
  return { der: new Uint8Array(cert.toSchema(true).toBER(false)), keys };
}

/** A root CA for `trustDomain` valid from `now` (default: the clock) for `ttlSeconds` (default 24 h). */
export async function createTestCa(opts: { trustDomain?: string; now?: Date; ttlSeconds?: number } = {}): Promise<TestCa> {
  const td = TrustDomain.parse(opts.trustDomain ?? "example.org");
  const now = opts.now ?? new Date();
  const ttlSeconds = opts.ttlSeconds ?? 86_400;
  const keys = await generateKeyPair({ extractable: true });
  const root = await createRootCa({ trustDomain: td, ttlSeconds, now, keyPair: keys });
  const authorities: readonly Uint8Array[] = Object.freeze([root.der]);
  const self = authorityOf(td, root.der, keys, [], { now, ttlSeconds });
  return {
    ...self,
    root: { der: root.der, privateKey: keys.privateKey, publicKey: keys.publicKey },
    bundle: { x509Authorities: (t: TrustDomain) => (t.equals(td) ? authorities : undefined) },
  };
}

/** A bundle source trusting each CA's root for that CA's trust domain (several domains or roots). */
export function bundleOf(...cas: TestCa[]): X509BundleSource {
  const byName = new Map<string, Uint8Array[]>();
  for (const ca of cas) byName.set(ca.trustDomain.name, [...(byName.get(ca.trustDomain.name) ?? []), ca.root.der]);
  return { x509Authorities: (td) => byName.get(td.name) };
}
