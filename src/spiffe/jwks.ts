/**
 * The SPIFFE bundle format: a JWK Set (SPIFFE Trust Domain and Bundle, section 4,
 * https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE_Trust_Domain_and_Bundle.md#4-spiffe-bundle-format).
 *
 * `parseJwksBundle` reads the document of one trust domain (the name is never in the document,
 * section 3) and throws BundleError with the codes listed in ./bundle.ts. In order:
 * - over MAX_BUNDLE_BYTES characters, not JSON, or not an object at the top;
 * - `keys` absent or null (4.1.3), not an array, or more than MAX_BUNDLE_KEYS elements;
 * - `spiffe_sequence` (4.1.1) / `spiffe_refresh_hint` (4.1.2) present and not a non-negative
 *   integer of at most 2^53-1 (null counts as absent);
 * then for each element of `keys`:
 * - not an object; any private member (d, p, q, dp, dq, qi, oth, k), whatever its use;
 * - no `kty` (4.2.1), no `use` (4.2.2);
 * - IGNORED, as the standard requires: a `use` other than "x509-svid" and "jwt-svid" (4.2.2),
 *   a `kty` other than "EC" and "RSA" (4.2.1, 4.1.3), and an x509-svid entry whose `x5c` is
 *   absent or empty (X509-SVID section 6.2);
 * - x509-svid (X509-SVID section 6): the first `x5c` value must be standard base64 (RFC 7517
 *   section 4.7) of one DER certificate with an EC P-256/P-384/P-521 or RSA key, and the JWK's
 *   public parameters must be that key (RFC 7517 section 4.7: "MUST match"); further `x5c` values
 *   are ignored (X509-SVID 6.2); a `kid` is ignored (6.1 forbids publishing one);
 * - jwt-svid (JWT-SVID section 6): a non-empty `kid` (6.1), unique in the set (RFC 7517 section
 *   4.5), and public parameters that WebCrypto imports (so EC points are on their curve).
 * Members not defined by the standard are ignored (4.1). Identical X.509 authorities are kept once.
 *
 * `formatJwksBundle` writes `spiffe_sequence` and `spiffe_refresh_hint` when set, then `keys`:
 * one x509-svid entry per certificate in bundle order (kty, use, crv/x/y with fixed-length
 * coordinates or n/e, x5c with that one certificate, no kid), then the jwt-svid entries sorted by
 * kid (kty, use, kid, alg when set, public parameters). The same bundle always gives the same text.
 */
import { subtle } from "../x509/engine.ts";
import { fromBase64, fromBase64Url, toArrayBuffer, toBase64 } from "../x509/encoding.ts";
import { quote } from "./errors.ts";
import type { TrustDomain } from "./trust-domain.ts";
import {
  Bundle,
  BundleError,
  PRIVATE_JWK_MEMBERS,
  canonicalPublicJwk,
  checkCertificate,
} from "./bundle.ts";

/** Largest bundle document accepted, in characters. */
export const MAX_BUNDLE_BYTES = 4 * 1024 * 1024;
/** Most elements accepted in `keys`. */
export const MAX_BUNDLE_KEYS = 1024;

export const X509_SVID_USE = "x509-svid";
export const JWT_SVID_USE = "jwt-svid";

type Obj = Record<string, unknown>;

export async function parseJwksBundle(trustDomain: TrustDomain, jsonText: string): Promise<Bundle> {
  if (typeof jsonText !== "string") throw new BundleError("bundle_malformed_json", "bundle: input is not text");
  if (jsonText.length > MAX_BUNDLE_BYTES) {
    throw new BundleError("bundle_too_large", `bundle: document is ${jsonText.length} characters, over ${MAX_BUNDLE_BYTES}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(jsonText);
  } catch (cause) {
    throw new BundleError("bundle_malformed_json", "bundle: document is not valid JSON", { cause });
  }
  if (!isObject(doc)) throw new BundleError("bundle_malformed_json", "bundle: document is not a JSON object");
  const keys = doc.keys;
  if (keys == null) throw new BundleError("bundle_missing_keys", 'bundle: document has no "keys" member');
  if (!Array.isArray(keys)) throw new BundleError("bundle_keys_not_array", 'bundle: "keys" is not an array');
  if (keys.length > MAX_BUNDLE_KEYS) {
    throw new BundleError("bundle_too_many_keys", `bundle: ${keys.length} keys, more than ${MAX_BUNDLE_KEYS}`);
  }
  const sequence = counter(doc.spiffe_sequence, "bundle_bad_sequence", "spiffe_sequence");
  const refreshHintSeconds = counter(doc.spiffe_refresh_hint, "bundle_bad_refresh_hint", "spiffe_refresh_hint");

  const x509Authorities: Uint8Array[] = [];
  const jwtAuthorities = new Map<string, JsonWebKey>();
  for (const [i, key] of keys.entries()) {
    const entry = await readKey(key, `key ${i}`);
    if (entry === null) continue;
    if ("der" in entry) {
      x509Authorities.push(entry.der);
    } else {
      if (jwtAuthorities.has(entry.kid)) {
        throw new BundleError("bundle_duplicate_kid", `bundle: key ${i} repeats kid ${quote(entry.kid)}`);
      }
      jwtAuthorities.set(entry.kid, entry.jwk);
    }
  }
  return Bundle.create(trustDomain, { x509Authorities, jwtAuthorities, sequence, refreshHintSeconds });
}

export async function formatJwksBundle(bundle: Bundle, options: { indent?: number } = {}): Promise<string> {
  const keys: Obj[] = [];
  for (const der of bundle.x509Authorities) {
    const { kty, ...params } = await certificateJwk(der, "x509 authority");
    keys.push({ kty, use: X509_SVID_USE, ...params, x5c: [toBase64(der)] });
  }
  for (const kid of [...bundle.jwtAuthorities.keys()].sort()) {
    const { kty, alg, crv, x, y, n, e } = bundle.jwtAuthorities.get(kid)!;
    keys.push({ kty, use: JWT_SVID_USE, kid, alg, crv, x, y, n, e });
  }
  const doc: Obj = {};
  if (bundle.sequence !== undefined) doc.spiffe_sequence = bundle.sequence;
  if (bundle.refreshHintSeconds !== undefined) doc.spiffe_refresh_hint = bundle.refreshHintSeconds;
  doc.keys = keys;
  return JSON.stringify(doc, null, options.indent);
}

/**
 * The canonical public JWK (`kty` with crv/x/y or n/e) of the key in DER certificate `der`.
 * Throws `bundle_bad_certificate` / `bundle_unsupported_key` like `Bundle.create`.
 */
export async function certificateJwk(der: Uint8Array, what: string): Promise<JsonWebKey> {
  const { info, key } = checkCertificate(der, what);
  const params = key.type === "RSA"
    ? { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }
    : { name: "ECDSA", namedCurve: key.curve! };
  try {
    const imported = await subtle.importKey("spki", toArrayBuffer(info.spki), params, true, ["verify"]);
    const { kty, crv, x, y, n, e } = await subtle.exportKey("jwk", imported);
    return kty === "EC" ? { kty, crv, x, y } : { kty, n, e };
  } catch (cause) {
    throw new BundleError("bundle_bad_certificate", `bundle: the public key of ${what} does not import`, { cause });
  }
}

type Entry = { der: Uint8Array } | { kid: string; jwk: JsonWebKey } | null;

async function readKey(key: unknown, what: string): Promise<Entry> {
  if (!isObject(key)) throw new BundleError("bundle_malformed_key", `bundle: ${what} is not a JSON object`);
  for (const m of PRIVATE_JWK_MEMBERS) {
    if (key[m] != null) throw new BundleError("bundle_private_key", `bundle: ${what} has private member "${m}"`);
  }
  const kty = text(key, "kty", what), use = text(key, "use", what);
  if (kty === undefined) throw new BundleError("bundle_key_missing_kty", `bundle: ${what} has no "kty"`);
  if (use === undefined) throw new BundleError("bundle_key_missing_use", `bundle: ${what} has no "use"`);
  if ((use !== X509_SVID_USE && use !== JWT_SVID_USE) || (kty !== "EC" && kty !== "RSA")) return null;

  if (use === X509_SVID_USE) {
    const x5c = key.x5c;
    if (x5c == null || (Array.isArray(x5c) && x5c.length === 0)) return null;
    if (!Array.isArray(x5c)) throw new BundleError("bundle_malformed_key", `bundle: ${what} has an "x5c" that is not an array`);
    const der = typeof x5c[0] === "string" ? fromBase64(x5c[0]) : null;
    if (der === null) {
      throw new BundleError("bundle_x5c_bad_base64", `bundle: the first "x5c" value of ${what} is not base64`);
    }
    const fromCert = await certificateJwk(der, `the certificate of ${what}`);
    const jwk = canonicalPublicJwk(key, what);
    if (!sameKey(jwk, fromCert)) {
      throw new BundleError("bundle_key_mismatch", `bundle: the parameters of ${what} are not its certificate's key`);
    }
    return { der };
  }

  const kid = text(key, "kid", what);
  if (kid === undefined || kid === "") throw new BundleError("bundle_jwt_missing_kid", `bundle: ${what} has no "kid"`);
  const jwk = canonicalPublicJwk(key, `${what} (kid ${quote(kid)})`);
  try {
    const { kty: t, crv, x, y, n, e } = jwk;
    const params = t === "EC" ? { name: "ECDSA", namedCurve: crv! } : { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
    await subtle.importKey("jwk", { kty: t, crv, x, y, n, e }, params, false, ["verify"]);
  } catch (cause) {
    throw new BundleError("bundle_bad_key", `bundle: ${what} (kid ${quote(kid)}) is not a valid public key`, { cause });
  }
  return { kid, jwk };
}

/** Same EC point, or same RSA modulus and exponent (leading zero bytes aside). */
function sameKey(a: JsonWebKey, b: JsonWebKey): boolean {
  if (a.kty !== b.kty) return false;
  if (a.kty === "EC") return a.crv === b.crv && sameInt(a.x, b.x) && sameInt(a.y, b.y);
  return sameInt(a.n, b.n) && sameInt(a.e, b.e);
}

function sameInt(a: string | undefined, b: string | undefined): boolean {
  const x = stripZeros(fromBase64Url(a ?? "")), y = stripZeros(fromBase64Url(b ?? ""));
  return x !== null && y !== null && x.length === y.length && x.every((v, i) => v === y[i]);
}

function stripZeros(v: Uint8Array | null): Uint8Array | null {
  if (v === null) return null;
  let i = 0;
  while (i < v.length && v[i] === 0) i++;
  return v.subarray(i);
}

/** A string member; absent and null give undefined, any other JSON type is `bundle_malformed_key`. */
function text(o: Obj, name: string, what: string): string | undefined {
  const v = o[name];
  if (v == null) return undefined;
  if (typeof v !== "string") throw new BundleError("bundle_malformed_key", `bundle: "${name}" of ${what} is not a string`);
  return v;
}

function counter(v: unknown, code: "bundle_bad_sequence" | "bundle_bad_refresh_hint", name: string): number | undefined {
  if (v == null) return undefined;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    throw new BundleError(code, `bundle: ${name} ${quote(JSON.stringify(v))} is not a non-negative integer`);
  }
  return v;
}

function isObject(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
