/**
 * An X.509-SVID the agent holds (its node SVID or a workload's): the chain, the key, and what the
 * loops need to know of it (expiry, rotation time). Keys are PKCS#8 PEM in memory because the TLS
 * stack and the key files take that form; they never leave this process except into 0600 files.
 */
import { decodePem } from "../x509/pem.ts";
import { readCertificate, serialHex } from "../x509/cert.ts";
import { bytesEqual } from "../x509/encoding.ts";
import { subtle } from "../x509/engine.ts";
import { importPkcs8, importSpki } from "../x509/keys.ts";
import { SpiffeId } from "../spiffe/id.ts";
import { rotationTime } from "./rotation.ts";

export interface HeldSvid {
  /** Leaf first, then intermediates (DER). */
  readonly chain: readonly Uint8Array[];
  readonly keyPem: string;
  readonly spiffeId: string;
  readonly serial: string;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly dnsNames: readonly string[];
  readonly rotateAt: number;
}

export { chainPem } from "../x509/pem.ts";

export function chainFromPem(text: string): Uint8Array[] {
  return decodePem(text)
    .filter((b) => b.label === "CERTIFICATE")
    .map((b) => b.der);
}

/** Describes `chain` (leaf first) held with `keyPem`; the rotation time is drawn once here. */
export function holdSvid(chain: readonly Uint8Array[], keyPem: string, random: () => number = Math.random): HeldSvid {
  const leaf = readCertificate(chain[0]!);
  const uri = leaf.uriSans[0];
  return {
    chain,
    keyPem,
    spiffeId: uri !== undefined ? SpiffeId.parse(uri).toString() : "",
    serial: serialHex(leaf),
    notBefore: leaf.notBefore,
    notAfter: leaf.notAfter,
    dnsNames: leaf.dnsSans,
    rotateAt: rotationTime(leaf.notBefore, leaf.notAfter, random),
  };
}

/** True when the private key in `keyPem` is the key certified by `leafDer` (P-256: same point). */
export async function keyMatchesLeaf(keyPem: string, leafDer: Uint8Array): Promise<boolean> {
  try {
    const priv = await subtle.exportKey("jwk", await importPkcs8(keyPem, { extractable: true }));
    const pubJwk = await subtle.exportKey("jwk", await importSpki(readCertificate(leafDer).spki));
    return priv.x === pubJwk.x && priv.y === pubJwk.y && priv.crv === pubJwk.crv;
  } catch {
    return false;
  }
}

/** True when the leaf's key is `spki` (DER SubjectPublicKeyInfo). */
export function leafHasKey(leafDer: Uint8Array, spki: Uint8Array): boolean {
  return bytesEqual(readCertificate(leafDer).spki, spki);
}
