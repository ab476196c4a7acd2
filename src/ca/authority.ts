/**
 * Making a new root or signing CA, after SPIRE's pkg/server/ca: the key pair is generated
 * extractable only long enough to export its PKCS#8 PEM for storage, then used through a
 * non-extractable import of that PEM; before the CA is trusted, its key signs a throwaway SVID
 * (`spiffe://TD/tidegate/ca-self-check`, never stored or handed out) that tidegate's own verifier
 * must accept against the root alone. Any failure is `ca_self_check_failed`, and the caller keeps
 * its old CA.
 *
 * A new root self-signs; its check mints the throwaway leaf directly under it, so nothing with a
 * future of its own is signed under a root that is only published. A signing CA's notAfter is
 * capped at its root's (mint.ts does it).
 */
import { SpiffeId } from "../spiffe/id.ts";
import type { TrustDomain } from "../spiffe/trust-domain.ts";
import { BACKDATE_SECONDS, createIntermediateCa, createRootCa, mintX509Svid, type Signer } from "../x509/mint.ts";
import { exportPkcs8Pem, generateKeyPair, importPkcs8 } from "../x509/keys.ts";
import { readCertificate } from "../x509/cert.ts";
import { verifyX509Svid } from "../x509/verify.ts";
import { CaError } from "./errors.ts";

export type AuthorityKind = "root" | "signing";

/** A CA certificate and its key, ready to be used once stored. */
export interface NewAuthority {
  readonly kind: AuthorityKind;
  readonly serial: string;
  readonly certificate: Uint8Array;
  /** Non-extractable. */
  readonly privateKey: CryptoKey;
  /** For CaStorage.saveKey only; dropped once saved. */
  readonly pkcs8Pem: string;
}

/** A CA about to be self-checked. */
export interface Candidate {
  readonly kind: AuthorityKind;
  readonly certificate: Uint8Array;
  readonly privateKey: CryptoKey;
}

/**
 * Tests only: `candidate` replaces a new CA's certificate or key right before its self-check
 * (a broken signer), to show that a failed check keeps the old CA.
 */
export interface CaTestHooks {
  candidate?(c: Candidate): Candidate | Promise<Candidate>;
}

const SELF_CHECK_TTL_SECONDS = 60;

/**
 * Signs a throwaway SVID with `signer` at `at` and verifies it against `anchor` with tidegate's
 * verifier; the chain is [leaf] when the signer is the anchor, [leaf, signer] otherwise.
 */
export async function selfCheck(td: TrustDomain, signer: Signer, anchor: Uint8Array, at: Date, what: string): Promise<void> {
  try {
    const throwaway = await generateKeyPair();
    const leaf = await mintX509Svid({
      id: SpiffeId.fromSegments(td, "tidegate", "ca-self-check"),
      publicKey: throwaway.publicKey,
      signer,
      ttlSeconds: SELF_CHECK_TTL_SECONDS,
      now: at,
    });
    const chain = signer.certificate === anchor ? [leaf.der] : [leaf.der, signer.certificate];
    const source = { x509Authorities: (t: TrustDomain) => (t.equals(td) ? [anchor] : undefined) };
    await verifyX509Svid(chain, source, { now: at });
  } catch (e) {
    throw new CaError("ca_self_check_failed", `ca: ${what} failed its self-check: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}

/** A time inside the certificate's validity, as near `now` as possible (for checks at load). */
export function timeWithin(certificate: Uint8Array, now: Date): Date {
  const { notBefore, notAfter } = readCertificate(certificate);
  return new Date(Math.min(Math.max(now.getTime(), notBefore + BACKDATE_SECONDS * 1000), notAfter));
}

async function usableKey(extractable: CryptoKey): Promise<{ privateKey: CryptoKey; pkcs8Pem: string }> {
  const pkcs8Pem = await exportPkcs8Pem(extractable);
  return { privateKey: await importPkcs8(pkcs8Pem, { extractable: false }), pkcs8Pem };
}

async function checked(
  td: TrustDomain,
  c: Candidate,
  serial: string,
  pkcs8Pem: string,
  anchor: (c: Candidate) => Uint8Array,
  hooks: CaTestHooks | undefined,
  now: Date,
): Promise<NewAuthority> {
  const use = hooks?.candidate ? await hooks.candidate(c) : c;
  await selfCheck(td, { certificate: use.certificate, privateKey: use.privateKey }, anchor(use), now, `new ${c.kind} CA ${serial}`);
  return { kind: c.kind, serial, certificate: use.certificate, privateKey: use.privateKey, pkcs8Pem };
}

/** A new self-signed root, self-checked at `now`. */
export async function newRoot(td: TrustDomain, ttlSeconds: number, now: Date, hooks?: CaTestHooks): Promise<NewAuthority> {
  const kp = await generateKeyPair({ extractable: true });
  const root = await createRootCa({ trustDomain: td, ttlSeconds, now, keyPair: kp });
  const { privateKey, pkcs8Pem } = await usableKey(kp.privateKey);
  return checked(td, { kind: "root", certificate: root.der, privateKey }, root.serial, pkcs8Pem, (c) => c.certificate, hooks, now);
}

/** A new signing CA under `root`, capped at the root's notAfter, self-checked at `now`. */
export async function newSigning(td: TrustDomain, root: Signer, ttlSeconds: number, now: Date, hooks?: CaTestHooks): Promise<NewAuthority> {
  const kp = await generateKeyPair({ extractable: true });
  const cert = await createIntermediateCa({ trustDomain: td, publicKey: kp.publicKey, signer: root, ttlSeconds, now });
  const { privateKey, pkcs8Pem } = await usableKey(kp.privateKey);
  return checked(td, { kind: "signing", certificate: cert.der, privateKey }, cert.serial, pkcs8Pem, () => root.certificate, hooks, now);
}
