/**
 * One fetch of a federated trust domain's bundle from its bundle endpoint (SPIFFE Federation,
 * section 5: endpoint profiles), answering the JWKS text. What is refused, each with its code:
 * - `federation_endpoint_untrusted`: the TLS certificate does not verify: with https_spiffe
 *   against the roots of the bundle held for the trust domain (the initial bundle until the first
 *   fetch), with https_web against the `ca` file or the system's roots, host name checked;
 * - `federation_endpoint_id_mismatch` (https_spiffe): the leaf's one URI SAN is not `endpoint_id`
 *   (host names are not checked: the SPIFFE ID is the endpoint's identity);
 * - `federation_endpoint_unreachable`: no connection, a timeout, an answer broken off;
 * - `federation_endpoint_refused`: an answer other than 200 (redirects are not followed: the
 *   bundle is what the named endpoint says, not what it points at);
 * - `federation_bundle_too_large`: a body over MAX_BUNDLE_BYTES, declared or counted as it arrives
 *   (an endless one is cut off there, not buffered until the timeout).
 * The body itself is parsed by the caller (federation.ts), which knows the trust domain.
 */
import { MAX_BUNDLE_BYTES, formatPemBundle, type Bundle } from "../spiffe/index.ts";
import { readCertificate } from "../x509/cert.ts";
import { TidegateError } from "../errors.ts";
import type { FederationSetting } from "./config.ts";

export class FederationError extends TidegateError {}

export const FETCH_TIMEOUT_MS = 10_000;

/** What fetchBundle needs beyond the setting: the bundle held now (https_spiffe) and the `ca` file's text (https_web). */
export interface FetchTrust {
  readonly held: Bundle | null;
  readonly caPem: string | null;
}

export type BundleFetcher = (f: FederationSetting, trust: FetchTrust, signal: AbortSignal) => Promise<string>;

function uriSansOf(raw: unknown): readonly string[] {
  try {
    return readCertificate(new Uint8Array(raw as Uint8Array)).uriSans;
  } catch {
    return [];
  }
}

function codeOf(e: unknown): string {
  for (let x: unknown = e, i = 0; x !== undefined && x !== null && i < 4; x = (x as { cause?: unknown }).cause, i++) {
    const c = (x as { code?: unknown }).code;
    if (typeof c === "string" && c !== "") return c;
  }
  return "";
}

const TLS_VERIFY_CODE = /CERT|SELF_SIGNED|ISSUER|UNABLE_TO_VERIFY|ALTNAME|TLS|HOSTNAME/;

/** The TLS options of Bun's fetch for one endpoint; `seen` records a mismatched SPIFFE ID. */
function tlsFor(f: FederationSetting, trust: FetchTrust, seen: { id: string | null }): Record<string, unknown> {
  if (f.profile === "https_web") return trust.caPem === null ? { rejectUnauthorized: true } : { ca: trust.caPem, rejectUnauthorized: true };
  if (trust.held === null) throw new FederationError("federation_endpoint_untrusted", `federation: no bundle of ${f.trustDomain.name} is held to authenticate ${f.bundleEndpoint}`);
  const want = f.endpointId!.toString();
  return {
    ca: formatPemBundle(trust.held),
    rejectUnauthorized: true,
    checkServerIdentity: (_host: string, cert: { raw?: unknown }) => {
      const uris = uriSansOf(cert?.raw);
      if (uris.length === 1 && uris[0] === want) return undefined;
      seen.id = uris.length === 1 ? uris[0]! : `${uris.length} URI SANs`;
      return new Error(`the endpoint presents ${seen.id}`);
    },
  };
}

/** GET the bundle endpoint; the body as text (JWKS, parsed by the caller). */
export const fetchBundle: BundleFetcher = async (f, trust, signal) => {
  const seen = { id: null as string | null };
  const tls = tlsFor(f, trust, seen);
  const where = `${f.trustDomain.name}'s bundle endpoint ${f.bundleEndpoint}`;
  let res: Response;
  try {
    res = await fetch(f.bundleEndpoint, {
      method: "GET",
      headers: { accept: "application/json" },
      redirect: "manual",
      keepalive: false,
      signal: AbortSignal.any([signal, AbortSignal.timeout(FETCH_TIMEOUT_MS)]),
      tls,
    } as RequestInit);
  } catch (e) {
    if (seen.id !== null) {
      throw new FederationError("federation_endpoint_id_mismatch", `federation: ${where} presents ${seen.id}, not ${f.endpointId!.toString()}: refused`, { cause: e });
    }
    const code = codeOf(e);
    if (TLS_VERIFY_CODE.test(code)) {
      const against = f.profile === "https_spiffe" ? `the bundle held for ${f.trustDomain.name}` : f.caFile !== null ? `the CA file ${f.caFile}` : "the system's roots";
      throw new FederationError("federation_endpoint_untrusted", `federation: ${where} is not trusted: its certificate does not verify against ${against} (${code})`, { cause: e });
    }
    const why = (e as Error).name === "TimeoutError" ? "timed out" : code || (e as Error).message || String(e);
    throw new FederationError("federation_endpoint_unreachable", `federation: cannot reach ${where}: ${why}`, { cause: e });
  }
  if (res.status !== 200) {
    await res.body?.cancel().catch(() => undefined);
    throw new FederationError("federation_endpoint_refused", `federation: ${where} answered ${res.status}`);
  }
  const declared = Number(res.headers.get("content-length"));
  if (Number.isFinite(declared) && declared > MAX_BUNDLE_BYTES) {
    await res.body?.cancel().catch(() => undefined);
    throw new FederationError("federation_bundle_too_large", `federation: ${where} sent ${declared} bytes, over ${MAX_BUNDLE_BYTES}`);
  }
  return readLimited(res, where);
};

/** The body as text, counted as it arrives: one without a length is refused as soon as it passes the limit. */
async function readLimited(res: Response, where: string): Promise<string> {
  const reader = res.body?.getReader();
  if (reader === undefined) return "";
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > MAX_BUNDLE_BYTES) {
        await reader.cancel().catch(() => undefined);
        throw new FederationError("federation_bundle_too_large", `federation: ${where} sent more than ${MAX_BUNDLE_BYTES} bytes`);
      }
      chunks.push(value);
    }
  } catch (e) {
    if (e instanceof FederationError) throw e;
    const why = (e as Error).name === "TimeoutError" ? "timed out" : codeOf(e) || (e as Error).message || String(e);
    throw new FederationError("federation_endpoint_unreachable", `federation: ${where} broke off its answer: ${why}`, { cause: e });
  }
  return new TextDecoder().decode(Buffer.concat(chunks));
}
