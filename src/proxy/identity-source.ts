/**
 * What the proxies need of the agent's identity half: the SVIDs it holds (to present on an mTLS
 * leg or an inbound listener) and the bundles it trusts (to verify the other end). The agent
 * implements it over AgentCore (src/agent/proxy-identity.ts); tests give a fixed one.
 */
import type { X509BundleSource } from "../x509/verify.ts";
import type { TrustDomain } from "../spiffe/trust-domain.ts";

/** An X.509-SVID and its key, as the TLS stack takes them (the agent's HeldSvid fits). */
export interface Credential {
  /** Leaf first, then intermediates (DER). */
  readonly chain: readonly Uint8Array[];
  readonly keyPem: string;
  readonly spiffeId: string;
  readonly serial: string;
  readonly notAfter: number;
}

export interface TrustNow {
  /** Changes whenever the bundles do; verification results are kept per generation. */
  readonly generation: number;
  readonly bundles: X509BundleSource;
  /** The roots of one trust domain as PEM (the TLS stack's `ca`), or null when it is not trusted. */
  caPem(td: TrustDomain): string | null;
  /** The roots of every trusted trust domain as PEM. */
  readonly allCaPem: string;
}

export interface IdentitySource {
  /** The SVID held for this SPIFFE ID and valid now (the one that expires last), or null. */
  svid(id: string): Credential | null;
  trust(): TrustNow;
}
