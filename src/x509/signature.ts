/**
 * Checking a certificate's or CSR's signature with WebCrypto (RFC 5280 section 4.1.1.3).
 *
 * Supported: ECDSA with SHA-256/384/512 (RFC 5758) on P-256/P-384/P-521, RSA PKCS#1 v1.5 with
 * SHA-256/384/512 (RFC 4055), Ed25519 (RFC 8410). Anything else is "unsupported", never "ok".
 * Imported public keys are cached by their SPKI bytes (bounded), so verifying many leaves under
 * the same CA imports its key once.
 */
import { subtle } from "./engine.ts";
import { toArrayBuffer } from "./encoding.ts";
import { DerError, TAG, children, expectTlv, readIntegerBytes } from "./der.ts";
import { describeSpki } from "./keys.ts";

export type SignatureCheck = "ok" | "bad" | "unsupported";

const ALGORITHMS: Readonly<Record<string, { kind: "ECDSA" | "RSA" | "Ed25519"; hash?: string }>> = {
  "1.2.840.10045.4.3.2": { kind: "ECDSA", hash: "SHA-256" },
  "1.2.840.10045.4.3.3": { kind: "ECDSA", hash: "SHA-384" },
  "1.2.840.10045.4.3.4": { kind: "ECDSA", hash: "SHA-512" },
  "1.2.840.113549.1.1.11": { kind: "RSA", hash: "SHA-256" },
  "1.2.840.113549.1.1.12": { kind: "RSA", hash: "SHA-384" },
  "1.2.840.113549.1.1.13": { kind: "RSA", hash: "SHA-512" },
  "1.3.101.112": { kind: "Ed25519" },
};
const POINT_SIZE: Readonly<Record<string, number>> = { "P-256": 32, "P-384": 48, "P-521": 66 };

interface VerifyKey {
  readonly key: CryptoKey;
  readonly params: AlgorithmIdentifier | EcdsaParams;
  readonly pointSize: number;
}

const MAX_CACHED_KEYS = 1024;
const keyCache = new Map<string, Promise<VerifyKey | null>>();

function cacheKey(algOid: string, spki: Uint8Array): string {
  let s = algOid + "|";
  for (let i = 0; i < spki.length; i += 4096) s += String.fromCharCode(...spki.subarray(i, i + 4096));
  return s;
}

async function importVerifyKey(algOid: string, spki: Uint8Array): Promise<VerifyKey | null> {
  const alg = ALGORITHMS[algOid];
  if (alg === undefined) return null;
  let d;
  try {
    d = describeSpki(spki);
  } catch {
    return null;
  }
  let importParams: AlgorithmIdentifier | EcKeyImportParams | RsaHashedImportParams;
  let params: AlgorithmIdentifier | EcdsaParams;
  let pointSize = 0;
  if (alg.kind === "ECDSA" && d.type === "EC" && d.curve !== undefined && POINT_SIZE[d.curve] !== undefined) {
    importParams = { name: "ECDSA", namedCurve: d.curve };
    params = { name: "ECDSA", hash: alg.hash! };
    pointSize = POINT_SIZE[d.curve]!;
  } else if (alg.kind === "RSA" && d.type === "RSA") {
    importParams = { name: "RSASSA-PKCS1-v1_5", hash: alg.hash! };
    params = { name: "RSASSA-PKCS1-v1_5" };
  } else if (alg.kind === "Ed25519" && d.type === "Ed25519") {
    importParams = { name: "Ed25519" };
    params = { name: "Ed25519" };
  } else return null;
  try {
    const key = await subtle.importKey("spki", toArrayBuffer(spki), importParams, false, ["verify"]);
    return { key, params, pointSize };
  } catch {
    return null;
  }
}

function verifyKey(algOid: string, spki: Uint8Array): Promise<VerifyKey | null> {
  const k = cacheKey(algOid, spki);
  let p = keyCache.get(k);
  if (p === undefined) {
    if (keyCache.size >= MAX_CACHED_KEYS) keyCache.clear();
    p = importVerifyKey(algOid, spki);
    keyCache.set(k, p);
  }
  return p;
}

/** ECDSA-Sig-Value (RFC 3279 section 2.2.3) to WebCrypto's r||s, or null when malformed. */
export function ecdsaDerToRaw(sig: Uint8Array, size: number): Uint8Array | null {
  try {
    const seq = expectTlv(sig, 0, sig.length, TAG.SEQUENCE, "ecdsa signature");
    const [r, s, more] = children(sig, seq);
    if (seq.end !== sig.length || r === undefined || s === undefined || more !== undefined) return null;
    const out = new Uint8Array(size * 2);
    for (const [i, t] of [r, s].entries()) {
      let v = readIntegerBytes(sig, t);
      if ((v[0]! & 0x80) !== 0) return null;
      if (v[0] === 0) v = v.subarray(1);
      if (v.length > size) return null;
      out.set(v, i * size + size - v.length);
    }
    return out;
  } catch (e) {
    if (e instanceof DerError) return null;
    throw e;
  }
}

/** Checks that `signature` (the BIT STRING octets) over `data` is by the key in `spki`. */
export async function checkSignature(data: Uint8Array, algOid: string, signature: Uint8Array, spki: Uint8Array): Promise<SignatureCheck> {
  const vk = await verifyKey(algOid, spki);
  if (vk === null) return "unsupported";
  let sig = signature;
  if (vk.pointSize > 0) {
    const raw = ecdsaDerToRaw(signature, vk.pointSize);
    if (raw === null) return "bad";
    sig = raw;
  }
  try {
    return (await subtle.verify(vk.params, vk.key, sig as Uint8Array<ArrayBuffer>, data as Uint8Array<ArrayBuffer>)) ? "ok" : "bad";
  } catch {
    return "bad";
  }
}
