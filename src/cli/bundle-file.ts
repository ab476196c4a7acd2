/**
 * A trust bundle as an operator names it on the command line: PEM roots or a SPIFFE bundle (JWKS),
 * for the trust domain given, or else the one trust domain its roots name in their URI SAN.
 */
import { Bundle, BundleSet, SpiffeId, TrustDomain, parseJwksBundle, parsePemBundle } from "../spiffe/index.ts";
import { readCertificate } from "../x509/cert.ts";
import { UsageError } from "./usage-error.ts";

/** Stands in while the bundle is parsed, before its trust domain is known; never used to verify. */
const UNNAMED = TrustDomain.parse("unnamed.invalid");

function rootTrustDomains(bundle: Bundle): Set<string> {
  const names = new Set<string>();
  for (const der of bundle.x509Authorities) {
    for (const uri of readCertificate(der).uriSans) {
      try {
        names.add(SpiffeId.parse(uri).trustDomain.name);
      } catch {
        // a URI SAN that is not a SPIFFE ID names no trust domain
      }
    }
  }
  return names;
}

export async function loadBundleFile(bytes: Uint8Array, trustDomain: string | undefined): Promise<BundleSet> {
  const text = new TextDecoder().decode(bytes);
  const td = trustDomain === undefined ? UNNAMED : TrustDomain.parse(trustDomain);
  const parsed = text.trimStart().startsWith("{") ? await parseJwksBundle(td, text) : parsePemBundle(td, text);
  if (trustDomain !== undefined) return BundleSet.of(parsed);
  const named = [...rootTrustDomains(parsed)];
  if (named.length !== 1) {
    throw new UsageError(
      named.length === 0
        ? "the bundle's roots name no trust domain in a URI SAN: give --trust-domain TD"
        : `the bundle's roots name several trust domains (${named.sort().join(", ")}): give --trust-domain TD`,
    );
  }
  const { x509Authorities, jwtAuthorities, sequence, refreshHintSeconds } = parsed;
  return BundleSet.of(
    Bundle.create(TrustDomain.parse(named[0]!), {
      x509Authorities,
      jwtAuthorities,
      ...(sequence !== undefined ? { sequence } : {}),
      ...(refreshHintSeconds !== undefined ? { refreshHintSeconds } : {}),
    }),
  );
}
