/**
 * Verifying an X.509-SVID (SPIFFE X509-SVID standard, section 5) against the bundle of the
 * leaf's trust domain, after go-spiffe's x509svid.Verify.
 *
 * Rejections, each an X509SvidError with its code:
 * - `svid_empty_chain`: no certificate at all.
 * - `svid_chain_too_long`: more than MAX_CHAIN_LENGTH certificates given.
 * - `svid_malformed`: a given certificate does not parse (cause: the X509Error).
 * - `svid_uri_san_count`: the leaf has not exactly one URI SAN (section 2, 5.2).
 * - `svid_bad_spiffe_id`: the URI SAN is not a SPIFFE ID (cause: the SpiffeIdError).
 * - `svid_leaf_no_path`: the leaf's SPIFFE ID has no path (sections 3.1, 5.2).
 * - `svid_leaf_is_ca`: the leaf has cA=true (sections 4.1, 5.2).
 * - `svid_leaf_key_cert_sign`, `svid_leaf_crl_sign`: the leaf may sign certificates or CRLs
 *   (sections 4.3, 5.2).
 * - `svid_leaf_no_digital_signature`: the leaf has no keyUsage or no digitalSignature (4.3).
 * - `svid_unhandled_critical_extension`: a certificate of the path (leaf or intermediate) has a
 *   critical extension this verifier does not process (RFC 5280 section 4.2), name constraints
 *   included: fail closed.
 * - `svid_expired`, `svid_not_yet_valid`: `now` outside a path certificate's validity (RFC 5280
 *   section 6.1.3 (a)(2)), the bundle's root included.
 * - `svid_no_bundle`: no X.509 authorities for the leaf's trust domain (section 5.1).
 * - `svid_bad_signature`: a certificate is not signed by the key of the issuer its name and key
 *   identifier point to; `svid_unsupported_algorithm`: the signature algorithm or key is not one
 *   signature.ts supports.
 * - `svid_intermediate_not_ca`: an intermediate lacks cA=true (section 4.1, RFC 5280 6.1.4 (k)).
 * - `svid_intermediate_no_key_cert_sign`: an intermediate lacks keyCertSign (section 4.3, RFC
 *   5280 6.1.4 (n)).
 * - `svid_path_length_exceeded`: more intermediates below a CA than its pathLenConstraint allows
 *   (RFC 5280 6.1.4 (m)).
 * - `svid_untrusted`: no issuer found for some certificate, among the given intermediates nor
 *   the bundle's authorities.
 * - `svid_path_search_exhausted`: the search made MAX_SIGNATURE_CHECKS signature checks without
 *   finding a path. A peer can send intermediates that all "issue" one another (one key, one
 *   name); without a cap the backtracking search would walk thousands of paths per handshake.
 *
 * Path building: from the leaf, each certificate's issuer is looked for first among the bundle's
 * authorities, then among the given intermediates, matching the issuer Name (DER bytes) and, when
 * both are present, the authority/subject key identifiers; candidates are tried in order with
 * backtracking. Authorities are trust anchors (RFC 5280 section 6.1.1 (d)): their own signature
 * and extensions are not checked, their validity and pathLenConstraint are. Intermediates given
 * twice (same DER) count once. When every candidate fails, the error of the first failure is
 * thrown, else `svid_untrusted`. Extended key usage is
 * not checked (as go-spiffe's ExtKeyUsageAny).
 */
import { SpiffeId } from "../spiffe/id.ts";
import { SpiffeIdError } from "../spiffe/errors.ts";
import type { TrustDomain } from "../spiffe/trust-domain.ts";
import { bytesEqual } from "./encoding.ts";
import { KEY_USAGE, readCertificate, type CertInfo } from "./cert.ts";
import { checkSignature } from "./signature.ts";
import { X509SvidError, quote } from "./x509-errors.ts";

/** Where the verifier finds the X.509 authorities (CA certificates, DER) of a trust domain. */
export interface X509BundleSource {
  x509Authorities(td: TrustDomain): readonly Uint8Array[] | undefined;
}

export interface VerifiedSvid {
  readonly id: SpiffeId;
  /** The verified path, DER: the leaf, the intermediates used, then the bundle authority. */
  readonly chain: Uint8Array[];
}

export const MAX_CHAIN_LENGTH = 8;
/** Signature checks one verification may make while searching (Go's crypto/x509 allows 100). */
export const MAX_SIGNATURE_CHECKS = 100;

export const SVID_ERROR_CODES = [
  "svid_empty_chain",
  "svid_chain_too_long",
  "svid_malformed",
  "svid_uri_san_count",
  "svid_bad_spiffe_id",
  "svid_leaf_no_path",
  "svid_leaf_is_ca",
  "svid_leaf_key_cert_sign",
  "svid_leaf_crl_sign",
  "svid_leaf_no_digital_signature",
  "svid_unhandled_critical_extension",
  "svid_expired",
  "svid_not_yet_valid",
  "svid_no_bundle",
  "svid_bad_signature",
  "svid_unsupported_algorithm",
  "svid_intermediate_not_ca",
  "svid_intermediate_no_key_cert_sign",
  "svid_path_length_exceeded",
  "svid_untrusted",
  "svid_path_search_exhausted",
] as const;
export type SvidErrorCode = (typeof SVID_ERROR_CODES)[number];

function fail(code: SvidErrorCode, message: string, cause?: unknown): X509SvidError {
  return new X509SvidError(code, `x509svid: ${message}`, cause === undefined ? undefined : { cause });
}

/** Authorities parsed once per DER object (bundles hand out the same arrays until they change). */
const authorityCache = new WeakMap<Uint8Array, CertInfo | null>();

function authority(der: Uint8Array): CertInfo | null {
  let info = authorityCache.get(der);
  if (info === undefined) {
    try {
      info = readCertificate(der);
    } catch {
      info = null;
    }
    authorityCache.set(der, info);
  }
  return info;
}

function checkValidity(c: CertInfo, now: number, what: string): X509SvidError | undefined {
  if (now < c.notBefore) return fail("svid_not_yet_valid", `${what} is not valid before ${new Date(c.notBefore).toISOString()}`);
  if (now > c.notAfter) return fail("svid_expired", `${what} expired at ${new Date(c.notAfter).toISOString()}`);
  return undefined;
}

function checkLeaf(leaf: CertInfo): SpiffeId {
  if (leaf.uriSans.length !== 1) throw fail("svid_uri_san_count", `leaf certificate has ${leaf.uriSans.length} URI SANs, exactly one is required`);
  let id: SpiffeId;
  try {
    id = SpiffeId.parse(leaf.uriSans[0]!);
  } catch (e) {
    if (e instanceof SpiffeIdError) throw fail("svid_bad_spiffe_id", `leaf URI SAN ${quote(leaf.uriSans[0]!)} is not a SPIFFE ID`, e);
    throw e;
  }
  if (id.path === "") throw fail("svid_leaf_no_path", `leaf SPIFFE ID ${quote(id.toString())} has no path`);
  if (leaf.basicConstraints?.cA === true) throw fail("svid_leaf_is_ca", "leaf certificate has cA=true");
  const ku = leaf.keyUsage ?? 0;
  if (ku & KEY_USAGE.keyCertSign) throw fail("svid_leaf_key_cert_sign", "leaf certificate has keyCertSign key usage");
  if (ku & KEY_USAGE.cRLSign) throw fail("svid_leaf_crl_sign", "leaf certificate has cRLSign key usage");
  if (!(ku & KEY_USAGE.digitalSignature)) throw fail("svid_leaf_no_digital_signature", "leaf certificate lacks digitalSignature key usage");
  if (leaf.unhandledCritical.length > 0) {
    throw fail("svid_unhandled_critical_extension", `leaf certificate has unhandled critical extension ${leaf.unhandledCritical[0]}`);
  }
  return id;
}

function mayIssue(issuer: CertInfo, child: CertInfo): boolean {
  if (!bytesEqual(issuer.subject, child.issuer)) return false;
  const aki = child.authorityKeyId;
  const ski = issuer.subjectKeyId;
  return aki === undefined || ski === undefined || bytesEqual(aki, ski);
}

interface Search {
  readonly roots: readonly CertInfo[];
  readonly intermediates: readonly CertInfo[];
  readonly now: number;
  firstError: X509SvidError | undefined;
  /** Signature checks made so far; the search stops at MAX_SIGNATURE_CHECKS. */
  checks: number;
}

/** Checks a candidate issuer of the last certificate of `path`; an error or undefined. */
async function tryIssuer(s: Search, path: readonly CertInfo[], issuer: CertInfo, isRoot: boolean): Promise<X509SvidError | undefined> {
  const child = path[path.length - 1]!;
  const what = isRoot ? "bundle authority" : "intermediate certificate";
  s.checks += 1;
  const sig = await checkSignature(child.tbs, child.signatureAlgorithm, child.signature, issuer.spki);
  if (sig === "unsupported") return fail("svid_unsupported_algorithm", `unsupported signature algorithm ${child.signatureAlgorithm} or ${what} key`);
  if (sig === "bad") return fail("svid_bad_signature", `certificate ${path.length - 1} of the path has a bad signature by its ${what}`);
  if (!isRoot) {
    if (issuer.basicConstraints?.cA !== true) return fail("svid_intermediate_not_ca", "intermediate certificate is not a CA (cA is not true)");
    if (!((issuer.keyUsage ?? 0) & KEY_USAGE.keyCertSign)) return fail("svid_intermediate_no_key_cert_sign", "intermediate certificate lacks keyCertSign key usage");
    if (issuer.unhandledCritical.length > 0) {
      return fail("svid_unhandled_critical_extension", `intermediate certificate has unhandled critical extension ${issuer.unhandledCritical[0]}`);
    }
  }
  const pathLen = issuer.basicConstraints?.pathLen;
  const below = path.length - 1;
  if (pathLen !== undefined && below > pathLen) {
    return fail("svid_path_length_exceeded", `${what} allows ${pathLen} intermediates below it, the path has ${below}`);
  }
  return checkValidity(issuer, s.now, what);
}

const exhausted = (s: Search) => s.checks >= MAX_SIGNATURE_CHECKS;

async function extend(s: Search, path: CertInfo[]): Promise<CertInfo[] | undefined> {
  const child = path[path.length - 1]!;
  for (const root of s.roots) {
    if (exhausted(s)) return undefined;
    if (!mayIssue(root, child)) continue;
    const err = await tryIssuer(s, path, root, true);
    if (err === undefined) return [...path, root];
    s.firstError ??= err;
  }
  if (path.length >= MAX_CHAIN_LENGTH) return undefined;
  for (const inter of s.intermediates) {
    if (exhausted(s)) return undefined;
    if (path.includes(inter) || !mayIssue(inter, child)) continue;
    const err = await tryIssuer(s, path, inter, false);
    if (err !== undefined) {
      s.firstError ??= err;
      continue;
    }
    const found = await extend(s, [...path, inter]);
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * Verifies `chain` (DER, the leaf first, then intermediates in any order) against `bundles` at
 * `opts.now`; returns the leaf's SPIFFE ID and the verified path. Throws X509SvidError.
 */
export async function verifyX509Svid(chain: readonly Uint8Array[], bundles: X509BundleSource, opts: { now: Date }): Promise<VerifiedSvid> {
  if (chain.length === 0) throw fail("svid_empty_chain", "empty certificate chain");
  if (chain.length > MAX_CHAIN_LENGTH) throw fail("svid_chain_too_long", `chain has ${chain.length} certificates, at most ${MAX_CHAIN_LENGTH} are accepted`);
  const certs = chain.map((der, i) => {
    try {
      return readCertificate(der);
    } catch (e) {
      throw fail("svid_malformed", `certificate ${i} of the chain does not parse`, e);
    }
  });
  const leaf = certs[0]!;
  const id = checkLeaf(leaf);
  const now = opts.now.getTime();
  const leafErr = checkValidity(leaf, now, "leaf certificate");
  if (leafErr !== undefined) throw leafErr;
  const authorities = bundles.x509Authorities(id.trustDomain);
  if (authorities === undefined || authorities.length === 0) {
    throw fail("svid_no_bundle", `no X.509 authorities for trust domain ${quote(id.trustDomain.name)}`);
  }
  const roots: CertInfo[] = [];
  for (const der of authorities) {
    const a = authority(der);
    if (a !== null) roots.push(a);
  }
  const intermediates: CertInfo[] = [];
  for (const c of certs.slice(1)) if (!intermediates.some((i) => bytesEqual(i.der, c.der))) intermediates.push(c);
  const s: Search = { roots, intermediates, now, firstError: undefined, checks: 0 };
  const path = await extend(s, [leaf]);
  if (path === undefined && exhausted(s)) {
    throw fail("svid_path_search_exhausted", `no path from the leaf ${quote(id.toString())} within ${MAX_SIGNATURE_CHECKS} signature checks`);
  }
  if (path === undefined) {
    throw s.firstError ?? fail("svid_untrusted", `no path from the leaf ${quote(id.toString())} to an authority of ${quote(id.trustDomain.name)}`);
  }
  return { id, chain: path.map((c) => c.der) };
}
