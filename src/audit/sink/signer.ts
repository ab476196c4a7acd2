/**
 * Checkpoint signers from an X.509-SVID held in memory (the agent's node SVID, the server's own).
 * Signing is synchronous (node:crypto), so a checkpoint is written at its place in the chain with
 * no event slipping in between. The key object is made once per SVID; a rotated SVID gives a new
 * signer. P-256 keys only: the verifier checks ES256.
 */
import { createPrivateKey, sign, X509Certificate, type KeyObject } from "node:crypto";
import type { AuditSigner } from "./audit-log.ts";

export interface SvidLike {
  readonly spiffeId: string;
  readonly chain: readonly Uint8Array[];
  readonly keyPem: string;
}

export function svidSigner(svid: SvidLike): AuditSigner {
  const key: KeyObject = createPrivateKey(svid.keyPem);
  if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1") {
    throw new Error(`audit: the SVID of ${svid.spiffeId} has no P-256 key: checkpoints are signed with ES256`);
  }
  const leaf = svid.chain[0];
  const notAfterMs = leaf === undefined ? Number.NaN : Date.parse(new X509Certificate(leaf).validTo);
  return {
    id: svid.spiffeId,
    chain: svid.chain,
    sign: (payload) => new Uint8Array(sign("sha256", payload, { key, dsaEncoding: "ieee-p1363" })),
    ...(Number.isFinite(notAfterMs) ? { notAfterMs } : {}),
  };
}

/** A signer that follows a changing SVID (rotation), made again only when the SVID object changes. */
export function followingSigner(current: () => SvidLike | null): () => AuditSigner | null {
  let held: SvidLike | null = null;
  let signer: AuditSigner | null = null;
  return () => {
    const svid = current();
    if (svid === null) return null;
    if (svid !== held) {
      signer = svidSigner(svid);
      held = svid;
    }
    return signer;
  };
}
