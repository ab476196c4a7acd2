/**
 * Key pairs for SVIDs and CAs: P-256 ECDSA (the SPIRE default, DESIGN.md section 4), made and
 * used through WebCrypto so a non-extractable private key never leaves the crypto engine.
 *
 * Rejected with X509Error: key bytes that are not a PKCS#8 / SPKI structure (`key_malformed`)
 * and keys other than EC P-256 where one is needed (`key_unsupported`). `describeSpki` also
 * names foreign keys (RSA, P-384, Ed25519...) for `svid inspect`.
 */
import { subtle } from "./engine.ts";
import { toArrayBuffer } from "./encoding.ts";
import { decodePem, encodePem } from "./pem.ts";
import { DerError, TAG, children, expectTlv, readBitString, readIntegerBytes, readOid, readTlv } from "./der.ts";
import { X509Error } from "./x509-errors.ts";

export const EC_P256: EcKeyImportParams = Object.freeze({ name: "ECDSA", namedCurve: "P-256" });
export const ECDSA_SHA256: EcdsaParams = Object.freeze({ name: "ECDSA", hash: "SHA-256" });

/** A fresh P-256 key pair; the private key is extractable only when asked (default: not). */
export async function generateKeyPair(opts: { extractable?: boolean } = {}): Promise<CryptoKeyPair> {
  return (await subtle.generateKey(EC_P256, opts.extractable ?? false, ["sign", "verify"])) as CryptoKeyPair;
}

export async function exportPkcs8(privateKey: CryptoKey): Promise<Uint8Array> {
  return new Uint8Array(await subtle.exportKey("pkcs8", privateKey));
}

export async function exportPkcs8Pem(privateKey: CryptoKey): Promise<string> {
  return encodePem("PRIVATE KEY", await exportPkcs8(privateKey));
}

export async function exportSpki(publicKey: CryptoKey): Promise<Uint8Array> {
  return new Uint8Array(await subtle.exportKey("spki", publicKey));
}

export async function exportSpkiPem(publicKey: CryptoKey): Promise<string> {
  return encodePem("PUBLIC KEY", await exportSpki(publicKey));
}

function derOf(input: Uint8Array | string, label: string): Uint8Array {
  if (typeof input !== "string") return input;
  const block = decodePem(input).find((b) => b.label === label);
  if (block === undefined) throw new X509Error("key_malformed", `x509: no "${label}" PEM block`);
  return block.der;
}

/** Imports a P-256 PKCS#8 private key (DER or PEM "PRIVATE KEY"). */
export async function importPkcs8(input: Uint8Array | string, opts: { extractable?: boolean } = {}): Promise<CryptoKey> {
  const der = derOf(input, "PRIVATE KEY");
  const algo = pkcs8Algorithm(der);
  if (algo !== "EC P-256") throw new X509Error("key_unsupported", `x509: private key is ${algo}, only EC P-256 is supported`);
  try {
    return await subtle.importKey("pkcs8", toArrayBuffer(der), EC_P256, opts.extractable ?? false, ["sign"]);
  } catch (e) {
    throw new X509Error("key_malformed", "x509: private key does not import as EC P-256", { cause: e });
  }
}

/** Imports a P-256 SubjectPublicKeyInfo (DER or PEM "PUBLIC KEY") as an ECDSA verify key. */
export async function importSpki(input: Uint8Array | string): Promise<CryptoKey> {
  const der = derOf(input, "PUBLIC KEY");
  const d = describeSpki(der);
  if (d.text !== "EC P-256") throw new X509Error("key_unsupported", `x509: public key is ${d.text}, only EC P-256 is supported`);
  try {
    return await subtle.importKey("spki", toArrayBuffer(der), EC_P256, true, ["verify"]);
  } catch (e) {
    throw new X509Error("key_malformed", "x509: public key does not import as EC P-256", { cause: e });
  }
}

export interface KeyDescription {
  readonly type: "EC" | "RSA" | "Ed25519" | "Ed448" | "unknown";
  /** "P-256", "P-384", "P-521", "P-192" or the curve OID; EC only. */
  readonly curve?: string;
  /** Modulus size; RSA only. */
  readonly bits?: number;
  /** "EC P-256", "RSA 2048", "Ed25519", "unknown (1.2.3)". */
  readonly text: string;
}

const CURVES: Readonly<Record<string, string>> = {
  "1.2.840.10045.3.1.7": "P-256",
  "1.3.132.0.34": "P-384",
  "1.3.132.0.35": "P-521",
  "1.2.840.10045.3.1.1": "P-192",
};
const OID_EC = "1.2.840.10045.2.1";
const OID_RSA = "1.2.840.113549.1.1.1";

function describeAlgorithm(der: Uint8Array, algSeq: ReturnType<typeof readTlv>, keyBits?: Uint8Array): KeyDescription {
  const [oidT, params] = children(der, algSeq);
  if (oidT === undefined) throw new DerError("bad algorithm");
  const oid = readOid(der, oidT);
  if (oid === OID_EC) {
    const curve = params?.tag === TAG.OID ? readOid(der, params) : "explicit parameters";
    const name = CURVES[curve] ?? curve;
    return { type: "EC", curve: name, text: `EC ${name}` };
  }
  if (oid === OID_RSA) {
    let bits: number | undefined;
    if (keyBits !== undefined) {
      const seq = expectTlv(keyBits, 0, keyBits.length, TAG.SEQUENCE, "rsa key");
      const [n] = children(keyBits, seq);
      if (n === undefined) throw new DerError("bad rsa key");
      const m = readIntegerBytes(keyBits, n);
      const s = m[0] === 0 ? m.subarray(1) : m;
      bits = s.length === 0 ? 0 : (s.length - 1) * 8 + (32 - Math.clz32(s[0]!));
    }
    return { type: "RSA", ...(bits !== undefined ? { bits } : {}), text: bits !== undefined ? `RSA ${bits}` : "RSA" };
  }
  if (oid === "1.3.101.112") return { type: "Ed25519", text: "Ed25519" };
  if (oid === "1.3.101.113") return { type: "Ed448", text: "Ed448" };
  return { type: "unknown", text: `unknown (${oid})` };
}

/** Describes a SubjectPublicKeyInfo. Throws X509Error `key_malformed` on bad DER. */
export function describeSpki(spki: Uint8Array): KeyDescription {
  try {
    const seq = expectTlv(spki, 0, spki.length, TAG.SEQUENCE, "spki");
    if (seq.end !== spki.length) throw new DerError("trailing bytes");
    const [alg, key, more] = children(spki, seq);
    if (alg?.tag !== TAG.SEQUENCE || key === undefined || more !== undefined) throw new DerError("bad spki");
    const { bits } = readBitString(spki, key);
    return describeAlgorithm(spki, alg, bits);
  } catch (e) {
    throw new X509Error("key_malformed", "x509: malformed public key info", { cause: e });
  }
}

/** The key type of a PKCS#8 PrivateKeyInfo ("EC P-256", ...). Throws `key_malformed`. */
function pkcs8Algorithm(der: Uint8Array): string {
  try {
    const seq = expectTlv(der, 0, der.length, TAG.SEQUENCE, "pkcs8");
    if (seq.end !== der.length) throw new DerError("trailing bytes");
    const [, alg] = children(der, seq);
    if (alg?.tag !== TAG.SEQUENCE) throw new DerError("bad pkcs8");
    return describeAlgorithm(der, alg).text;
  } catch (e) {
    throw new X509Error("key_malformed", "x509: malformed private key (PKCS#8 expected)", { cause: e });
  }
}
