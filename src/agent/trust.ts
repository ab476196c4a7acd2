/**
 * Trust on first contact (docs/server-api.md, "Agent"; ../shared/DESIGN.md section 2): the agent
 * trusts the server's root only when an operator vouched for it, by its SHA-256 fingerprint (as
 * `tidegate token create` prints it) or by a bundle file. Nothing here sends a token.
 *
 * With a fingerprint, the bundle is fetched over TLS WITHOUT verification, then only the root
 * whose SHA-256 (of its DER) equals the fingerprint is kept; no match is
 * `server_fingerprint_mismatch`. The trust domain is the one the kept root names in its URI SAN
 * (`spiffe://TD`, no path). Every later connection is verified against that root alone until the
 * server's own (verified) answer hands over the full bundle.
 */
import { Bundle, SpiffeId, TrustDomain, formatPemBundle, parseJwksBundle, parsePemBundle } from "../spiffe/index.ts";
import { readCertificate } from "../x509/cert.ts";
import { subtle } from "../x509/engine.ts";
import { toArrayBuffer, toHex } from "../x509/encoding.ts";
import { AgentError } from "./errors.ts";
import { callServer, type TlsTrust } from "./server-client.ts";

/** Stands in while a bundle is read, before its trust domain is known; never used to verify. */
const UNNAMED = TrustDomain.parse("unnamed.invalid");

/** 64 lowercase hex digits from what an operator typed (colons, spaces and case ignored). */
export function parseFingerprint(text: string): string {
  const hex = text.replace(/[:\s]/g, "").toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) {
    throw new AgentError("fingerprint_malformed", `agent: --server-fingerprint ${JSON.stringify(text.slice(0, 100))} is not a SHA-256 (64 hex digits, colons allowed)`);
  }
  return hex;
}

export async function sha256Hex(der: Uint8Array): Promise<string> {
  return toHex(new Uint8Array(await subtle.digest("SHA-256", toArrayBuffer(der))));
}

/** The trust domains the URI SANs of `der` name as trust-domain IDs (`spiffe://TD`, no path). */
function namedTrustDomains(der: Uint8Array): string[] {
  const out: string[] = [];
  for (const uri of readCertificate(der).uriSans) {
    try {
      const id = SpiffeId.parse(uri);
      if (id.path === "") out.push(id.trustDomain.name);
    } catch {
      // not a SPIFFE ID
    }
  }
  return out;
}

/** The one trust domain that all of `roots` name. */
export function trustDomainOfRoots(roots: readonly Uint8Array[], what: string): TrustDomain {
  const names = new Set(roots.flatMap((r) => namedTrustDomains(r)));
  if (names.size !== 1) {
    throw new AgentError(
      "server_root_no_trust_domain",
      names.size === 0 ? `agent: ${what} names no trust domain (a URI SAN spiffe://TD)` : `agent: ${what} names several trust domains (${[...names].sort().join(", ")})`,
    );
  }
  return TrustDomain.parse([...names][0]!);
}

export function serverIdOf(td: TrustDomain): string {
  return SpiffeId.fromSegments(td, "tidegate", "server").toString();
}

export function tlsTrustOf(bundle: Bundle): TlsTrust {
  return { caPem: formatPemBundle(bundle), serverId: serverIdOf(bundle.trustDomain) };
}

/** Fetches the bundle unverified and keeps the root with `fingerprint` (hex, parsed). */
export async function trustByFingerprint(serverOrigin: string, fingerprint: string, signal?: AbortSignal): Promise<Bundle> {
  const body = await callServer({ origin: serverOrigin, method: "GET", path: "/.well-known/spiffe-bundle", trust: null, ...(signal ? { signal } : {}) });
  let offered: Bundle;
  try {
    offered = await parseJwksBundle(UNNAMED, JSON.stringify(body));
  } catch (e) {
    throw new AgentError("server_bad_answer", `agent: ${serverOrigin} offers a bundle that does not parse`, { cause: e });
  }
  const seen: string[] = [];
  for (const root of offered.x509Authorities) {
    const fp = await sha256Hex(root);
    if (fp === fingerprint) {
      const td = trustDomainOfRoots([root], `the root with fingerprint ${fingerprint}`);
      return Bundle.create(td, { x509Authorities: [root] });
    }
    seen.push(fp);
  }
  throw new AgentError(
    "server_fingerprint_mismatch",
    `agent: no root of ${serverOrigin} has fingerprint ${fingerprint} (it offers ${seen.join(", ") || "none"}): refused, no token sent`,
  );
}

/** A bundle file an operator gave (PEM roots or SPIFFE JWKS): the trust domain its roots name. */
export async function trustByBundleFile(text: string, path: string): Promise<Bundle> {
  let parsed: Bundle;
  try {
    parsed = text.trimStart().startsWith("{") ? await parseJwksBundle(UNNAMED, text) : parsePemBundle(UNNAMED, text);
  } catch (e) {
    throw new AgentError("trust_bundle_bad", `agent: --trust-bundle ${JSON.stringify(path)} is not a bundle (PEM or SPIFFE JWKS)`, { cause: e });
  }
  if (parsed.x509Authorities.length === 0) throw new AgentError("trust_bundle_bad", `agent: --trust-bundle ${JSON.stringify(path)} holds no X.509 root`);
  const td = trustDomainOfRoots(parsed.x509Authorities, `--trust-bundle ${JSON.stringify(path)}`);
  return Bundle.create(td, { x509Authorities: parsed.x509Authorities });
}
