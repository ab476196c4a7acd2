/** Shared by the CA's tests: injected time, small TTLs, minting and verifying against bundle(). */
import { BundleSet } from "../spiffe/bundle-set.ts";
import { SpiffeId } from "../spiffe/id.ts";
import { TrustDomain } from "../spiffe/trust-domain.ts";
import { readCertificate, serialHex } from "../x509/cert.ts";
import { createCsr } from "../x509/csr.ts";
import { generateKeyPair } from "../x509/keys.ts";
import { verifyX509Svid, type VerifiedSvid } from "../x509/verify.ts";
import type { CaManager, IssuedSvid } from "./manager.ts";
import type { CaSettings } from "./settings.ts";

export const TD = TrustDomain.parse("example.org");
export const WORKLOAD = SpiffeId.parse("spiffe://example.org/workload");
export const T0 = Date.parse("2030-01-01T00:00:00Z");

/** `s` seconds after T0. */
export function at(s: number): Date {
  return new Date(T0 + s * 1000);
}

/** root 10000 s, signing 1000 s, root rotated 3000 s before its end, refresh hint 300 s. */
export const SMALL: CaSettings = {
  rootTtlSeconds: 10_000,
  signingTtlSeconds: 1_000,
  rootRotateBeforeSeconds: 3_000,
  refreshHintSeconds: 300,
};

const keyPair = generateKeyPair();

/** A leaf for WORKLOAD from a CSR, at `now`. */
export async function mintAt(ca: CaManager, now: Date, ttlSeconds = 100): Promise<IssuedSvid> {
  const kp = await generateKeyPair();
  const csr = await createCsr({ privateKey: kp.privateKey, publicKey: kp.publicKey });
  return ca.mintFromCsr({ csr, id: WORKLOAD, ttlSeconds, now });
}

/** The same without a CSR (fast, for long simulations). */
export async function mintQuick(ca: CaManager, now: Date, ttlSeconds: number): Promise<IssuedSvid> {
  return ca.mintForKey({ id: WORKLOAD, publicKey: (await keyPair).publicKey, ttlSeconds, now });
}

/** Verifies `svid` against the CA's current bundle at `now`; the result's last element is the root used. */
export function verifyNow(ca: CaManager, svid: IssuedSvid, now: Date): Promise<VerifiedSvid> {
  return verifyX509Svid(svid.chain, BundleSet.of(ca.bundle()), { now });
}

export function codeOf(e: unknown): string | undefined {
  return typeof e === "object" && e !== null && "code" in e ? String(e.code) : undefined;
}

export function serialOf(der: Uint8Array): string {
  return serialHex(readCertificate(der));
}
