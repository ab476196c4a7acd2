/**
 * For the proxies' tests: what the agent would hand a listener, made from test PKI
 * (test/helpers/test-ca.ts) — a leaf as a Credential, and a CA's root as the trust in force.
 */
import type { TestCa, TestLeaf } from "../../test/helpers/test-ca.ts";
import { Bundle, BundleSet, TrustDomain } from "../spiffe/index.ts";
import { readCertificate, serialHex } from "../x509/cert.ts";
import { exportPkcs8Pem } from "../x509/keys.ts";
import { encodePem } from "../x509/pem.ts";
import type { Credential, TrustNow } from "./identity-source.ts";

/** `leaf` as the agent holds an SVID: chain, key, SPIFFE ID, serial, expiry. */
export async function credentialOf(leaf: TestLeaf): Promise<Credential> {
  const cert = readCertificate(leaf.der);
  return { chain: leaf.chain, keyPem: await exportPkcs8Pem(leaf.privateKey), spiffeId: leaf.id.toString(), serial: serialHex(cert), notAfter: cert.notAfter };
}

/** `ca`'s root as the bundle of example.org (or `td`), at `generation`. */
export function trustOf(ca: TestCa, generation = 1, td = TrustDomain.parse("example.org")): TrustNow {
  const pem = encodePem("CERTIFICATE", ca.root.der);
  return { generation, bundles: BundleSet.of(Bundle.create(td, { x509Authorities: [ca.root.der] })), caPem: (t) => (t.equals(td) ? pem : null), allCaPem: pem };
}
