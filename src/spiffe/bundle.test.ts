import { isTidegateError } from "../errors.ts";
import { subtle } from "../x509/engine.ts";
import { toBase64Url } from "../x509/encoding.ts";
import { assert, describe, test } from "../../test/shim.ts";
import { createTestCa } from "../../test/helpers/test-ca.ts";
import { BUNDLE_ERROR_CODES, Bundle, type BundleInit } from "./bundle.ts";
import { TrustDomain } from "./trust-domain.ts";

const td = TrustDomain.parse("example.org");
const other = TrustDomain.parse("other.example");
const rootA = (await createTestCa({ trustDomain: td.name })).root.der;
const rootB = (await createTestCa({ trustDomain: td.name })).root.der;

async function ecJwk(): Promise<JsonWebKey> {
  const k = (await subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"])) as CryptoKeyPair;
  const { kty, crv, x, y } = await subtle.exportKey("jwk", k.publicKey);
  return { kty, crv, x, y };
}
const jwkA = await ecJwk();
const jwkB = await ecJwk();

function codeOf(init: BundleInit): string | null {
  try {
    Bundle.create(td, init);
    return null;
  } catch (e) {
    if (isTidegateError(e)) return e.code;
    throw e;
  }
}

describe("Bundle.create", () => {
  const rejected: [string, BundleInit, string][] = [
    ["a certificate that is not bytes", { x509Authorities: ["MII" as unknown as Uint8Array] }, "bundle_bad_certificate"],
    ["bytes that are not a certificate", { x509Authorities: [new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01])] }, "bundle_bad_certificate"],
    ["a certificate with a trailing byte", { x509Authorities: [new Uint8Array([...rootA, 0])] }, "bundle_bad_certificate"],
    ["an empty certificate", { x509Authorities: [new Uint8Array(0)] }, "bundle_bad_certificate"],
    ["an empty key id", { jwtAuthorities: { "": jwkA } }, "bundle_jwt_missing_kid"],
    ["a private EC key", { jwtAuthorities: { a: { ...jwkA, d: "AAAA" } } }, "bundle_private_key"],
    ["a symmetric key", { jwtAuthorities: { a: { kty: "oct", k: "AAAA" } } }, "bundle_private_key"],
    ["a key that is null", { jwtAuthorities: { a: null as unknown as JsonWebKey } }, "bundle_bad_key"],
    ["an OKP key", { jwtAuthorities: { a: { kty: "OKP", crv: "Ed25519", x: jwkA.x! } } }, "bundle_bad_key"],
    ["an unknown curve", { jwtAuthorities: { a: { ...jwkA, crv: "P-192" } } }, "bundle_bad_key"],
    ["a P-256 key labelled P-384", { jwtAuthorities: { a: { ...jwkA, crv: "P-384" } } }, "bundle_bad_key"],
    ["a point off the curve", { jwtAuthorities: { a: { ...jwkA, y: jwkB.y! } } }, "bundle_bad_key"],
    ["a coordinate at p", {
      jwtAuthorities: { a: { ...jwkA, x: toBase64Url(hex("ffffffff00000001000000000000000000000000ffffffffffffffffffffffff")) } },
    }, "bundle_bad_key"],
    ["an RSA key without n", { jwtAuthorities: { a: { kty: "RSA", e: "AQAB" } } }, "bundle_bad_key"],
    ["an RSA key with an empty e", { jwtAuthorities: { a: { kty: "RSA", n: "AQAB", e: "" } } }, "bundle_bad_key"],
    ["a negative sequence", { sequence: -1 }, "bundle_bad_sequence"],
    ["a fractional sequence", { sequence: 0.5 }, "bundle_bad_sequence"],
    ["a NaN sequence", { sequence: Number.NaN }, "bundle_bad_sequence"],
    ["a sequence over 2^53-1", { sequence: 2 ** 53 }, "bundle_bad_sequence"],
    ["an infinite refresh hint", { refreshHintSeconds: Number.POSITIVE_INFINITY }, "bundle_bad_refresh_hint"],
    ["a negative refresh hint", { refreshHintSeconds: -1 }, "bundle_bad_refresh_hint"],
  ];
  for (const [name, init, code] of rejected) {
    test(`rejects ${name} with ${code}`, () => {
      assert.equal(codeOf(init), code);
      assert.ok((BUNDLE_ERROR_CODES as readonly string[]).includes(code));
    });
  }

  test("makes an empty, frozen bundle", () => {
    const b = Bundle.create(td);
    assert.ok(b.isEmpty());
    assert.ok(Object.isFrozen(b) && Object.isFrozen(b.x509Authorities));
    assert.equal(b.sequence, undefined);
    assert.equal(String(b), "bundle(example.org: 0 x509, 0 jwt)");
  });

  test("copies its inputs and drops duplicate certificates, keeping the first place", () => {
    const input = [rootA, rootB, rootA.slice()];
    const b = Bundle.create(td, { x509Authorities: input });
    input.pop();
    input[0] = rootB;
    assert.deepEqual(b.x509Authorities, [rootA, rootB]);
    assert.notEqual(b.x509Authorities[0], rootA);
    assert.ok(b.hasX509Authority(rootB));
  });

  test("keeps only kty, the public members and alg of a JWT key, frozen", () => {
    const b = Bundle.create(td, {
      jwtAuthorities: new Map([["k1", { ...jwkA, alg: "ES256", ext: true, key_ops: ["verify"], use: "sig", d: null } as unknown as JsonWebKey]]),
    });
    const k = b.jwtAuthorities.get("k1")!;
    assert.deepEqual(k, { ...jwkA, alg: "ES256" });
    assert.ok(Object.isFrozen(k));
  });

  test("takes JWT keys from a plain object too", () => {
    const b = Bundle.create(td, { jwtAuthorities: { a: jwkA, b: jwkB } });
    assert.deepEqual([...b.jwtAuthorities.keys()], ["a", "b"]);
  });
});

describe("Bundle.equals", () => {
  const base = Bundle.create(td, { x509Authorities: [rootA, rootB], jwtAuthorities: { a: jwkA }, sequence: 1, refreshHintSeconds: 60 });
  const cases: [string, Bundle, boolean][] = [
    ["itself", base, true],
    ["the roots in another order", base.withX509Authorities([rootB, rootA]), true],
    ["another trust domain", Bundle.create(other, { x509Authorities: [rootA, rootB], jwtAuthorities: { a: jwkA }, sequence: 1, refreshHintSeconds: 60 }), false],
    ["another sequence", base.withSequence(2), false],
    ["no sequence", base.withSequence(undefined), false],
    ["another refresh hint", base.withRefreshHint(61), false],
    ["no refresh hint", base.withRefreshHint(undefined), false],
    ["one root fewer", base.withX509Authorities([rootA]), false],
    ["another JWT key under the kid", base.withJwtAuthorities(new Map([["a", jwkB]])), false],
    ["the JWT key under another kid", base.withJwtAuthorities(new Map([["b", jwkA]])), false],
    ["the JWT key with an alg", base.withJwtAuthorities(new Map([["a", { ...jwkA, alg: "ES256" }]])), false],
    ["no JWT keys", base.withJwtAuthorities(new Map()), false],
  ];
  for (const [name, b, expected] of cases) {
    test(`${expected ? "equal to" : "differs from"} ${name}`, () => {
      assert.equal(base.equals(b), expected);
      assert.equal(b.equals(base), expected);
    });
  }

  test("with* helpers leave the original unchanged", () => {
    base.withSequence(9).withRefreshHint(1).withX509Authorities([]).withJwtAuthorities(new Map());
    assert.equal(base.sequence, 1);
    assert.equal(base.x509Authorities.length, 2);
    assert.equal(base.jwtAuthorities.size, 1);
  });
});

function hex(s: string): Uint8Array {
  return new Uint8Array(s.match(/../g)!.map((h) => parseInt(h, 16)));
}
