/**
 * The variables through which a `tidegate run` child trusts the agent's interception CA (DESIGN.md
 * section 3): OpenSSL and what uses its default paths (SSL_CERT_FILE), Node and Bun
 * (NODE_EXTRA_CA_CERTS, added to their built-in roots), Python requests (REQUESTS_CA_BUNDLE) and
 * curl (CURL_CA_BUNDLE). All four name the one bundle (system roots + the CA,
 * ../intercept/trust-bundle.ts).
 *
 * Guaranteed: each of the four appears exactly once, with the bundle's path, whatever the caller
 * set for it (every entry of that name is dropped, duplicates included); every other entry is kept
 * byte for byte, in order.
 */
export const CA_BUNDLE_VARIABLES = ["SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"] as const;

const PREFIXES = CA_BUNDLE_VARIABLES.map((n) => new TextEncoder().encode(`${n}=`));

function named(entry: Uint8Array, prefix: Uint8Array): boolean {
  if (entry.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (entry[i] !== prefix[i]) return false;
  return true;
}

/** `env` (NAME=VALUE entries as bytes) with the four variables set to `bundlePath`, last. */
export function withCaBundle(env: readonly Uint8Array[], bundlePath: string): Uint8Array[] {
  const kept = env.filter((e) => !PREFIXES.some((p) => named(e, p)));
  return [...kept, ...CA_BUNDLE_VARIABLES.map((n) => new TextEncoder().encode(`${n}=${bundlePath}`))];
}
