/**
 * A bundle of X.509 authorities as PEM text: one or more `CERTIFICATE` blocks (RFC 7468 section 5),
 * the form go-spiffe's x509bundle reads and writes and `openssl verify -CAfile` takes.
 *
 * `parsePemBundle` throws BundleError: `bundle_too_large` (over MAX_BUNDLE_BYTES characters),
 * `bundle_empty` (no PEM block; go-spiffe returns an empty bundle here, we refuse a trust file
 * that trusts nothing), `bundle_pem_malformed` (broken framing or base64, the PemError as cause),
 * `bundle_pem_bad_label` (any label but CERTIFICATE: a key or CSR in a trust file is a mistake),
 * and the certificate codes of `Bundle.create`. Text between blocks is ignored (RFC 7468 section 2).
 *
 * `formatPemBundle` writes the X.509 authorities only, in bundle order; JWT authorities, the
 * sequence number and the refresh hint have no place in PEM and are left out. A bundle without
 * X.509 authorities gives "" (which `parsePemBundle` refuses as `bundle_empty`).
 */
import { PemError, decodePem, encodePem } from "../x509/pem.ts";
import { Bundle, BundleError } from "./bundle.ts";
import { MAX_BUNDLE_BYTES } from "./jwks.ts";
import type { TrustDomain } from "./trust-domain.ts";

export function parsePemBundle(trustDomain: TrustDomain, text: string): Bundle {
  if (typeof text !== "string") throw new BundleError("bundle_pem_malformed", "bundle: input is not text");
  if (text.length > MAX_BUNDLE_BYTES) {
    throw new BundleError("bundle_too_large", `bundle: pem is ${text.length} characters, over ${MAX_BUNDLE_BYTES}`);
  }
  let blocks;
  try {
    blocks = decodePem(text);
  } catch (cause) {
    if (!(cause instanceof PemError)) throw cause;
    if (cause.code === "pem_none") throw new BundleError("bundle_empty", "bundle: pem has no certificate", { cause });
    throw new BundleError("bundle_pem_malformed", `bundle: pem is malformed (${cause.code})`, { cause });
  }
  for (const [i, b] of blocks.entries()) {
    if (b.label !== "CERTIFICATE") {
      throw new BundleError("bundle_pem_bad_label", `bundle: pem block ${i} is "${b.label}", not "CERTIFICATE"`);
    }
  }
  return Bundle.create(trustDomain, { x509Authorities: blocks.map((b) => b.der) });
}

export function formatPemBundle(bundle: Bundle): string {
  return bundle.x509Authorities.map((der) => encodePem("CERTIFICATE", der)).join("");
}
