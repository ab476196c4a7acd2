/**
 * A SPIFFE bundle: the keys a trust domain's authorities use, as one immutable value
 * (SPIFFE Trust Domain and Bundle, https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE_Trust_Domain_and_Bundle.md,
 * section 3). A bundle always carries the name of its trust domain, which the bundle document
 * itself does not (section 3: the `<trust_domain_name, bundle>` tuple).
 *
 * Guaranteed by `Bundle.create` (and so by every parser that returns a Bundle):
 * - every X.509 authority is one DER X.509 certificate, nothing before or after it, whose key is
 *   EC P-256/P-384/P-521 or RSA; duplicates are dropped, the first occurrence keeps its place;
 * - every JWT authority has a non-empty key ID and an EC (P-256/P-384/P-521) or RSA public key
 *   with well-formed parameters (RFC 7518 section 6) and, for EC, a point on its curve; it is
 *   stored with only `kty`, the public members and `alg` when given; private members are refused,
 *   never silently dropped;
 * - `sequence` and `refreshHintSeconds`, when set, are non-negative safe integers (sections 4.1.1, 4.1.2).
 * `parseJwksBundle` additionally imports every key with WebCrypto; `Bundle.create` is synchronous.
 *
 * `x509Authorities` is the list of DER certificates; the "X.509 authorities of trust domain T"
 * source the verifier needs is `BundleSet` / `sourceOf` in ./bundle-set.ts, never a Bundle method,
 * so that the field and the source method (both named after go-spiffe's X509Authorities) don't clash.
 */
import { TidegateError } from "../errors.ts";
import { readCertificate, type CertInfo } from "../x509/cert.ts";
import { bytesEqual, fromBase64Url } from "../x509/encoding.ts";
import { describeSpki, type KeyDescription } from "../x509/keys.ts";
import { quote } from "./errors.ts";
import type { TrustDomain } from "./trust-domain.ts";

/**
 * Every rejection of this module and of ./bundle-pem.ts, ./jwks.ts and ./bundle-set.ts, with the
 * rule it enforces. "TDB" is the SPIFFE Trust Domain and Bundle standard, "X509-SVID" and
 * "JWT-SVID" the SVID standards (their section 6, "Representation in the SPIFFE Bundle").
 */
export const BUNDLE_ERROR_CODES = [
  "bundle_too_large", // input over MAX_BUNDLE_BYTES characters, refused before parsing
  "bundle_malformed_json", // not JSON, or the top level is not an object (TDB 4.1, RFC 7517 section 5)
  "bundle_missing_keys", // no "keys" member, or null (TDB 4.1.3: MUST be present)
  "bundle_keys_not_array", // "keys" is not an array (RFC 7517 section 5.1)
  "bundle_too_many_keys", // more than MAX_BUNDLE_KEYS entries
  "bundle_bad_sequence", // spiffe_sequence not a non-negative safe integer (TDB 4.1.1)
  "bundle_bad_refresh_hint", // spiffe_refresh_hint not a non-negative safe integer (TDB 4.1.2)
  "bundle_malformed_key", // a "keys" element not an object, or "use"/"kid"/"x5c" of the wrong JSON type
  "bundle_private_key", // a key with d, p, q, dp, dq, qi, oth or k (RFC 7518 6.2.2, 6.3.2, 6.4.1)
  "bundle_key_missing_kty", // no "kty" (TDB 4.2.1, RFC 7517 section 4.1: MUST be set)
  "bundle_key_missing_use", // no "use" (TDB 4.2.2: MUST be set)
  "bundle_x5c_bad_base64", // first x5c value not standard base64 (RFC 7517 section 4.7)
  "bundle_bad_certificate", // not exactly one DER X.509 certificate
  "bundle_unsupported_key", // a certificate key other than EC P-256/P-384/P-521 or RSA
  "bundle_bad_key", // JWK public parameters missing or malformed (RFC 7518 section 6), or refused by WebCrypto
  "bundle_key_mismatch", // JWK parameters differ from the x5c certificate's key (RFC 7517 section 4.7)
  "bundle_jwt_missing_kid", // jwt-svid key without a non-empty "kid" (JWT-SVID 6.1)
  "bundle_duplicate_kid", // two jwt-svid keys with one "kid" (RFC 7517 section 4.5)
  "bundle_pem_bad_label", // a PEM block other than CERTIFICATE
  "bundle_pem_malformed", // PEM framing or base64 broken (cause: the PemError)
  "bundle_empty", // PEM text without any certificate
  "bundle_set_duplicate", // two bundles for one trust domain given to BundleSet.of
] as const;

export type BundleErrorCode = (typeof BUNDLE_ERROR_CODES)[number];

export class BundleError extends TidegateError<BundleErrorCode> {}

export interface BundleInit {
  readonly x509Authorities?: readonly Uint8Array[];
  /** Key ID to public JWK. A plain object is accepted too (its own enumerable members). */
  readonly jwtAuthorities?: ReadonlyMap<string, JsonWebKey> | Readonly<Record<string, JsonWebKey>>;
  readonly sequence?: number;
  readonly refreshHintSeconds?: number;
}

/** EC curves a bundle key may use, with the byte length of one coordinate (RFC 7518 section 6.2.1.2). */
export const EC_CURVES: Readonly<Record<string, number>> = { "P-256": 32, "P-384": 48, "P-521": 66 };

/** JWK members that carry private or symmetric key material (RFC 7518 sections 6.2.2, 6.3.2, 6.4.1). */
export const PRIVATE_JWK_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] as const;

export class Bundle {
  readonly trustDomain: TrustDomain;
  /** DER certificates, in the order given, without duplicates. Treat the bytes as read-only. */
  readonly x509Authorities: readonly Uint8Array[];
  /** Key ID to public JWK (frozen objects). */
  readonly jwtAuthorities: ReadonlyMap<string, JsonWebKey>;
  readonly sequence: number | undefined;
  readonly refreshHintSeconds: number | undefined;

  private constructor(td: TrustDomain, x509: Uint8Array[], jwt: Map<string, JsonWebKey>, seq?: number, hint?: number) {
    this.trustDomain = td;
    this.x509Authorities = Object.freeze(x509);
    this.jwtAuthorities = jwt;
    this.sequence = seq;
    this.refreshHintSeconds = hint;
    Object.freeze(this);
  }

  /** Validates and copies `init`; throws BundleError (see BUNDLE_ERROR_CODES). */
  static create(trustDomain: TrustDomain, init: BundleInit = {}): Bundle {
    const x509: Uint8Array[] = [];
    for (const [i, der] of (init.x509Authorities ?? []).entries()) {
      if (!(der instanceof Uint8Array)) {
        throw new BundleError("bundle_bad_certificate", `bundle: x509 authority ${i} is not a byte array`);
      }
      checkCertificate(der, `x509 authority ${i}`);
      if (!x509.some((d) => bytesEqual(d, der))) x509.push(der.slice());
    }
    const jwt = new Map<string, JsonWebKey>();
    const given = init.jwtAuthorities ?? {};
    const entries = given instanceof Map ? [...given.entries()] : Object.entries(given);
    for (const [kid, jwk] of entries) {
      if (typeof kid !== "string" || kid.length === 0) {
        throw new BundleError("bundle_jwt_missing_kid", "bundle: a jwt authority has an empty key id");
      }
      jwt.set(kid, canonicalPublicJwk(jwk, `jwt authority ${quote(kid)}`));
    }
    checkCounter(init.sequence, "bundle_bad_sequence", "sequence");
    checkCounter(init.refreshHintSeconds, "bundle_bad_refresh_hint", "refresh hint");
    return new Bundle(trustDomain, x509, jwt, init.sequence, init.refreshHintSeconds);
  }

  isEmpty(): boolean {
    return this.x509Authorities.length === 0 && this.jwtAuthorities.size === 0;
  }

  hasX509Authority(der: Uint8Array): boolean {
    return this.x509Authorities.some((d) => bytesEqual(d, der));
  }

  withX509Authorities(x509Authorities: readonly Uint8Array[]): Bundle {
    return Bundle.create(this.trustDomain, { ...this.init(), x509Authorities });
  }

  withJwtAuthorities(jwtAuthorities: ReadonlyMap<string, JsonWebKey>): Bundle {
    return Bundle.create(this.trustDomain, { ...this.init(), jwtAuthorities });
  }

  withSequence(sequence: number | undefined): Bundle {
    return Bundle.create(this.trustDomain, { ...this.init(), sequence });
  }

  withRefreshHint(refreshHintSeconds: number | undefined): Bundle {
    return Bundle.create(this.trustDomain, { ...this.init(), refreshHintSeconds });
  }

  /**
   * Same trust domain, sequence and refresh hint, the same set of X.509 authorities (order does
   * not matter) and the same key IDs mapping to the same public keys.
   */
  equals(other: Bundle): boolean {
    if (!this.trustDomain.equals(other.trustDomain)) return false;
    if (this.sequence !== other.sequence || this.refreshHintSeconds !== other.refreshHintSeconds) return false;
    if (this.x509Authorities.length !== other.x509Authorities.length) return false;
    if (!this.x509Authorities.every((d) => other.hasX509Authority(d))) return false;
    if (this.jwtAuthorities.size !== other.jwtAuthorities.size) return false;
    for (const [kid, jwk] of this.jwtAuthorities) {
      const o = other.jwtAuthorities.get(kid);
      if (o === undefined || !jwkEquals(jwk, o)) return false;
    }
    return true;
  }

  toString(): string {
    return `bundle(${this.trustDomain.name}: ${this.x509Authorities.length} x509, ${this.jwtAuthorities.size} jwt)`;
  }

  private init(): BundleInit {
    return {
      x509Authorities: this.x509Authorities,
      jwtAuthorities: this.jwtAuthorities,
      sequence: this.sequence,
      refreshHintSeconds: this.refreshHintSeconds,
    };
  }
}

/**
 * Reads `der` as exactly one DER X.509 certificate (src/x509/cert.ts `readCertificate`, the same
 * strict reader the SVID verifier uses) with a supported key, or throws `bundle_bad_certificate` /
 * `bundle_unsupported_key`. `what` names it in messages.
 */
export function checkCertificate(der: Uint8Array, what: string): { info: CertInfo; key: KeyDescription } {
  let info: CertInfo, key: KeyDescription;
  try {
    info = readCertificate(der);
    key = describeSpki(info.spki);
  } catch (cause) {
    throw new BundleError("bundle_bad_certificate", `bundle: ${what} is not a DER X.509 certificate`, { cause });
  }
  if (key.type === "RSA" || (key.type === "EC" && EC_CURVES[key.curve ?? ""] !== undefined)) return { info, key };
  throw new BundleError(
    "bundle_unsupported_key",
    `bundle: ${what} has a ${quote(key.text)} key; only EC P-256/P-384/P-521 and RSA are supported`,
  );
}

/**
 * The public JWK with only `kty`, its public members and `alg`, frozen; throws
 * `bundle_private_key` for private members (a member set to null counts as absent) and `bundle_bad_key` for a missing, unknown or
 * malformed key type or parameter (RFC 7518 sections 6.2.1 and 6.3.1). `what` names it in messages.
 */
export function canonicalPublicJwk(jwk: unknown, what: string): JsonWebKey {
  if (typeof jwk !== "object" || jwk === null || Array.isArray(jwk)) {
    throw new BundleError("bundle_bad_key", `bundle: ${what} is not a JWK object`);
  }
  const k = jwk as Record<string, unknown>;
  for (const m of PRIVATE_JWK_MEMBERS) {
    if (k[m] != null) throw new BundleError("bundle_private_key", `bundle: ${what} has private member "${m}"`);
  }
  if (k.alg != null && typeof k.alg !== "string") {
    throw new BundleError("bundle_bad_key", `bundle: ${what} has a non-string "alg"`);
  }
  const alg = k.alg == null ? {} : { alg: k.alg as string };
  if (k.kty === "EC") {
    const size = typeof k.crv === "string" && Object.hasOwn(EC_CURVES, k.crv) ? EC_CURVES[k.crv] : undefined;
    if (size === undefined) throw new BundleError("bundle_bad_key", `bundle: ${what} has an unsupported curve`);
    const x = fromB64u(k.x), y = fromB64u(k.y);
    if (x?.length !== size || y?.length !== size) {
      throw new BundleError("bundle_bad_key", `bundle: ${what} needs "x" and "y" of ${size} bytes, base64url`);
    }
    if (!onCurve(k.crv as string, x, y)) {
      throw new BundleError("bundle_bad_key", `bundle: ${what} is not a point on ${k.crv as string}`);
    }
    return Object.freeze({ kty: "EC", crv: k.crv as string, x: k.x as string, y: k.y as string, ...alg });
  }
  if (k.kty === "RSA") {
    const n = fromB64u(k.n), e = fromB64u(k.e);
    if (n === null || e === null || n.length === 0 || e.length === 0) {
      throw new BundleError("bundle_bad_key", `bundle: ${what} needs "n" and "e", base64url`);
    }
    return Object.freeze({ kty: "RSA", n: k.n as string, e: k.e as string, ...alg });
  }
  throw new BundleError("bundle_bad_key", `bundle: ${what} has key type ${quote(String(k.kty))}, not EC or RSA`);
}

/**
 * Prime p and coefficient b of the NIST curves y^2 = x^3 - 3x + b (mod p) (FIPS 186-4, appendix
 * D.1.2 / SEC 2). Checked here because not every WebCrypto does it on import (Deno 2 takes any x, y).
 */
const CURVE_PARAMS: Readonly<Record<string, { p: bigint; b: bigint }>> = {
  "P-256": {
    p: 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn,
    b: 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn,
  },
  "P-384": {
    p: 0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffffn,
    b: 0xb3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aefn,
  },
  "P-521": {
    p: (1n << 521n) - 1n,
    b: 0x0051953eb9618e1c9a1f929a21a0b68540eea2da725b99b315f3b8b489918ef109e156193951ec7e937b1652c0bd3bb1bf073573df883d2c34f1ef451fd46b503f00n,
  },
};

function onCurve(crv: string, xb: Uint8Array, yb: Uint8Array): boolean {
  const c = CURVE_PARAMS[crv];
  if (c === undefined) return false;
  const { p, b } = c;
  const x = toBigInt(xb), y = toBigInt(yb);
  if (x >= p || y >= p) return false;
  const rhs = (((x * x) % p) * x - 3n * x + b) % p;
  return (y * y - rhs) % p === 0n;
}

function toBigInt(bytes: Uint8Array): bigint {
  let v = 0n;
  for (const byte of bytes) v = (v << 8n) | BigInt(byte);
  return v;
}

function fromB64u(v: unknown): Uint8Array | null {
  return typeof v === "string" ? fromBase64Url(v) : null;
}

function jwkEquals(a: JsonWebKey, b: JsonWebKey): boolean {
  return a.kty === b.kty && a.crv === b.crv && a.x === b.x && a.y === b.y && a.n === b.n && a.e === b.e &&
    a.alg === b.alg;
}

function checkCounter(v: number | undefined, code: "bundle_bad_sequence" | "bundle_bad_refresh_hint", what: string) {
  if (v !== undefined && !(Number.isSafeInteger(v) && v >= 0)) {
    throw new BundleError(code, `bundle: ${what} ${quote(String(v))} is not a non-negative integer`);
  }
}
