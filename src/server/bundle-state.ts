/**
 * The trust bundle as the server serves it, computed once per change of the CA's bundle: the
 * Bundle (the source the mTLS listener verifies node SVIDs against), its JWKS text (the bundle
 * endpoint) and object (embedded in attestation, renew and sync answers), and the roots as PEM
 * (the TLS listeners' `ca`, for building client chains).
 */
import { BundleSet, formatJwksBundle, type Bundle } from "../spiffe/index.ts";
import { encodePem } from "../x509/index.ts";

export interface ServedBundle {
  readonly bundle: Bundle;
  readonly source: BundleSet;
  readonly sequence: number;
  readonly jwksText: string;
  readonly jwks: unknown;
  readonly rootsPem: string;
}

export async function serveBundle(bundle: Bundle): Promise<ServedBundle> {
  const jwksText = await formatJwksBundle(bundle);
  return {
    bundle,
    source: BundleSet.of(bundle),
    sequence: bundle.sequence ?? 0,
    jwksText,
    jwks: JSON.parse(jwksText),
    rootsPem: bundle.x509Authorities.map((d) => encodePem("CERTIFICATE", d)).join(""),
  };
}
