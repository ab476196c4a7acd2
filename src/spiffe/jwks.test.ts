import * as asn1js from "asn1js";
import fc from "fast-check";
import { fuzzRuns } from "../../test/fuzz-runs.ts";
import * as pkijs from "pkijs";
import { isTidegateError } from "../errors.ts";
import { subtle } from "../x509/engine.ts";
import { fromBase64Url, toBase64, toBase64Url } from "../x509/encoding.ts";
import { assert, describe, test } from "../../test/shim.ts";
import { BUNDLE_ERROR_CODES, Bundle, BundleError } from "./bundle.ts";
import { MAX_BUNDLE_BYTES, MAX_BUNDLE_KEYS, formatJwksBundle, parseJwksBundle } from "./jwks.ts";
import { TrustDomain } from "./trust-domain.ts";

const td = TrustDomain.parse("example.org");

/** A self-signed certificate with a fresh key; `spki` replaces the subject key (for unsupported keys). */
async function selfSigned(kind: "P-256" | "P-384" | "RSA", spki?: pkijs.PublicKeyInfo) {
  const alg = kind === "RSA"
    ? { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" }
    : { name: "ECDSA", namedCurve: kind };
  const keys = (await subtle.generateKey(alg, true, ["sign", "verify"])) as CryptoKeyPair;
  const cert = new pkijs.Certificate();
  cert.version = 2;
  cert.serialNumber = new asn1js.Integer({ value: 1 });
  const o = new pkijs.AttributeTypeAndValue({ type: "2.5.4.10", value: new asn1js.Utf8String({ value: "example.org" }) });
  cert.issuer.typesAndValues.push(o);
  cert.subject.typesAndValues.push(o);
  cert.notBefore.value = new Date(Date.UTC(2025, 0, 1));
  cert.notAfter.value = new Date(Date.UTC(2035, 0, 1));
  await cert.subjectPublicKeyInfo.importKey(keys.publicKey);
  if (spki !== undefined) cert.subjectPublicKeyInfo = spki;
  await cert.sign(keys.privateKey, kind === "P-384" ? "SHA-384" : "SHA-256");
  const jwk = await subtle.exportKey("jwk", keys.publicKey);
  const pub = kind === "RSA" ? { kty: "RSA", n: jwk.n, e: jwk.e } : { kty: "EC", crv: jwk.crv, x: jwk.x, y: jwk.y };
  return { der: new Uint8Array(cert.toSchema(true).toBER(false)), b64: "", pub };
}

async function withB64(kind: "P-256" | "P-384" | "RSA", spki?: pkijs.PublicKeyInfo) {
  const c = await selfSigned(kind, spki);
  return { ...c, b64: toBase64(c.der) };
}

const ec = await withB64("P-256");
const ec2 = await withB64("P-256");
const ec384 = await withB64("P-384");
const rsa = await withB64("RSA");
const ed25519 = await withB64("P-256", new pkijs.PublicKeyInfo({
  algorithm: new pkijs.AlgorithmIdentifier({ algorithmId: "1.3.101.112" }),
  subjectPublicKey: new asn1js.BitString({ valueHex: new Uint8Array(32).fill(7) }),
}));
const jwtEc = (await selfSigned("P-256")).pub;
const jwtRsa = (await selfSigned("RSA")).pub;

const x509Key = (c: typeof ec, extra: object = {}) => ({ use: "x509-svid", ...c.pub, x5c: [c.b64], ...extra });
const jwtKey = (kid: string, pub: object = jwtEc, extra: object = {}) => ({ use: "jwt-svid", kid, ...pub, ...extra });
const doc = (keys: unknown[], extra: object = {}) => JSON.stringify({ ...extra, keys });

async function codeOf(text: string): Promise<string | null> {
  try {
    await parseJwksBundle(td, text);
    return null;
  } catch (e) {
    if (isTidegateError(e)) return e.code;
    throw e;
  }
}

const notOnCurve = { kty: "EC", crv: "P-256", x: toBase64Url(new Uint8Array(32).fill(1)), y: toBase64Url(new Uint8Array(32).fill(2)) };
const b64url = rsa.b64.replace(/\+/g, "-").replace(/\//g, "_");

const rejected: [string, string, string][] = [
  ["empty text", "", "bundle_malformed_json"],
  ["not json", "{keys: []}", "bundle_malformed_json"],
  ["a json array", "[]", "bundle_malformed_json"],
  ["json null", "null", "bundle_malformed_json"],
  ["a json number", "42", "bundle_malformed_json"],
  ["too large", " ".repeat(MAX_BUNDLE_BYTES + 1), "bundle_too_large"],
  ["no keys", "{}", "bundle_missing_keys"],
  ["null keys", '{"keys":null}', "bundle_missing_keys"],
  ["keys an object", '{"keys":{}}', "bundle_keys_not_array"],
  ["keys a string", '{"keys":"[]"}', "bundle_keys_not_array"],
  ["too many keys", doc(new Array(MAX_BUNDLE_KEYS + 1).fill({ kty: "EC", use: "other" })), "bundle_too_many_keys"],
  ["negative sequence", doc([], { spiffe_sequence: -1 }), "bundle_bad_sequence"],
  ["fractional sequence", doc([], { spiffe_sequence: 1.5 }), "bundle_bad_sequence"],
  ["string sequence", doc([], { spiffe_sequence: "1" }), "bundle_bad_sequence"],
  ["boolean sequence", doc([], { spiffe_sequence: true }), "bundle_bad_sequence"],
  ["sequence over 2^53-1", '{"keys":[],"spiffe_sequence":18446744073709551615}', "bundle_bad_sequence"],
  ["negative refresh hint", doc([], { spiffe_refresh_hint: -60 }), "bundle_bad_refresh_hint"],
  ["string refresh hint", doc([], { spiffe_refresh_hint: "60" }), "bundle_bad_refresh_hint"],
  ["fractional refresh hint", doc([], { spiffe_refresh_hint: 0.5 }), "bundle_bad_refresh_hint"],
  ["a key that is a number", doc([1]), "bundle_malformed_key"],
  ["a key that is an array", doc([[]]), "bundle_malformed_key"],
  ["a key that is null", doc([null]), "bundle_malformed_key"],
  ["jwt key with d", doc([jwtKey("a", jwtEc, { d: "AAAA" })]), "bundle_private_key"],
  ["x509 key with d", doc([x509Key(ec, { d: "AAAA" })]), "bundle_private_key"],
  ["rsa key with p", doc([jwtKey("a", jwtRsa, { p: "AAAA" })]), "bundle_private_key"],
  ["oct key with k", doc([{ kty: "oct", use: "jwt-svid", kid: "a", k: "AAAA" }]), "bundle_private_key"],
  ["unknown use with d", doc([{ kty: "EC", use: "other", d: "AAAA" }]), "bundle_private_key"],
  ["missing kty", doc([{ use: "jwt-svid", kid: "a", crv: "P-256", x: jwtEc.x, y: jwtEc.y }]), "bundle_key_missing_kty"],
  ["numeric kty", doc([{ ...jwtKey("a"), kty: 1 }]), "bundle_malformed_key"],
  ["missing use", doc([{ ...jwtEc, kid: "a" }]), "bundle_key_missing_use"],
  ["numeric use", doc([{ ...jwtEc, kid: "a", use: 1 }]), "bundle_malformed_key"],
  ["x5c a string", doc([{ ...x509Key(ec), x5c: ec.b64 }]), "bundle_malformed_key"],
  ["x5c not base64", doc([{ ...x509Key(ec), x5c: ["%%%%"] }]), "bundle_x5c_bad_base64"],
  ["x5c base64url", doc([{ ...x509Key(rsa), x5c: [b64url] }]), "bundle_x5c_bad_base64"],
  ["x5c a number", doc([{ ...x509Key(ec), x5c: [5] }]), "bundle_x5c_bad_base64"],
  ["x5c not a certificate", doc([{ ...x509Key(ec), x5c: ["MAMCAQE="] }]), "bundle_bad_certificate"],
  ["x5c empty string", doc([{ ...x509Key(ec), x5c: [""] }]), "bundle_bad_certificate"],
  ["x5c with trailing byte", doc([{ ...x509Key(ec), x5c: [toBase64(new Uint8Array([...ec.der, 0]))] }]), "bundle_bad_certificate"],
  ["x5c with an ed25519 key", doc([{ ...x509Key(ec), x5c: [ed25519.b64] }]), "bundle_unsupported_key"],
  ["x509 params of another key", doc([{ ...x509Key(ec), x: ec2.pub.x, y: ec2.pub.y }]), "bundle_key_mismatch"],
  ["x509 rsa cert with ec params", doc([{ ...x509Key(ec), x5c: [rsa.b64] }]), "bundle_key_mismatch"],
  ["x509 p-384 cert as p-256", doc([{ ...x509Key(ec), x5c: [ec384.b64] }]), "bundle_key_mismatch"],
  ["x509 without x and y", doc([{ kty: "EC", use: "x509-svid", crv: "P-256", x5c: [ec.b64] }]), "bundle_bad_key"],
  ["x509 rsa without n", doc([{ kty: "RSA", use: "x509-svid", e: "AQAB", x5c: [rsa.b64] }]), "bundle_bad_key"],
  ["jwt without kid", doc([{ use: "jwt-svid", ...jwtEc }]), "bundle_jwt_missing_kid"],
  ["jwt with empty kid", doc([jwtKey("")]), "bundle_jwt_missing_kid"],
  ["jwt with numeric kid", doc([{ ...jwtKey("a"), kid: 7 }]), "bundle_malformed_key"],
  ["duplicate kid", doc([jwtKey("a"), jwtKey("a", jwtRsa)]), "bundle_duplicate_kid"],
  ["jwt unsupported curve", doc([jwtKey("a", { ...jwtEc, crv: "secp256k1" })]), "bundle_bad_key"],
  ["jwt short x", doc([jwtKey("a", { ...jwtEc, x: jwtEc.x!.slice(0, 40) })]), "bundle_bad_key"],
  ["jwt x with padding", doc([jwtKey("a", { ...jwtEc, x: jwtEc.x + "=" })]), "bundle_bad_key"],
  ["jwt point not on curve", doc([jwtKey("a", notOnCurve)]), "bundle_bad_key"],
  ["jwt rsa without e", doc([jwtKey("a", { kty: "RSA", n: jwtRsa.n })]), "bundle_bad_key"],
  ["jwt non-string alg", doc([jwtKey("a", jwtEc, { alg: 1 })]), "bundle_bad_key"],
];

describe("parseJwksBundle rejects", () => {
  for (const [name, text, code] of rejected) {
    test(`${name} with ${code}`, async () => {
      assert.equal(await codeOf(text), code);
    });
  }

  test("every code used is in BUNDLE_ERROR_CODES", () => {
    for (const [, , code] of rejected) assert.ok((BUNDLE_ERROR_CODES as readonly string[]).includes(code), code);
  });

  test("messages start with the module and name the key", async () => {
    const e = await parseJwksBundle(td, doc([jwtKey("a"), jwtKey("a")])).catch((e: unknown) => e);
    assert.ok(e instanceof Error);
    assert.equal(e.message, 'bundle: key 1 repeats kid "a"');
  });

  // Found by bundle.fuzz.test.ts: the curve was looked up with the object's prototype in the way,
  // so "constructor" or "toString" gave a message about a function's size.
  test("a curve named like an object member is an unsupported curve", async () => {
    for (const crv of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
      const e = await parseJwksBundle(td, doc([jwtKey("a", { ...jwtEc, crv })])).catch((e: unknown) => e);
      assert.ok(e instanceof BundleError && e.code === "bundle_bad_key");
      assert.equal(e.message, 'bundle: key 0 (kid "a") has an unsupported curve');
    }
  });
});

describe("parseJwksBundle accepts", () => {
  test("an empty key set", async () => {
    const b = await parseJwksBundle(td, '{"keys":[]}');
    assert.ok(b.isEmpty());
    assert.equal(b.sequence, undefined);
    assert.equal(b.refreshHintSeconds, undefined);
    assert.ok(b.trustDomain.equals(td));
  });

  test("the shape of the standard's Appendix A example (RSA root, sequence, refresh hint)", async () => {
    const text = `{
        "spiffe_sequence": 1,
        "spiffe_refresh_hint": 2419200,
        "keys": [
                {
                        "kty": "RSA",
                        "use": "x509-svid",
                        "x5c": ["${rsa.b64}"],
                        "n": "${rsa.pub.n}",
                        "e": "AQAB"
                }
        ]
}`;
    const b = await parseJwksBundle(td, text);
    assert.equal(b.sequence, 1);
    assert.equal(b.refreshHintSeconds, 2419200);
    assert.equal(b.x509Authorities.length, 1);
    assert.deepEqual(b.x509Authorities[0], rsa.der);
  });

  test("a SPIRE-style bundle: EC P-256 and P-384 roots, EC and RSA JWT keys", async () => {
    const text = doc([x509Key(ec), x509Key(ec384), jwtKey("C6vs25welZOx6WksNYfbMfiw9l96pMnD"), jwtKey("rsa-1", jwtRsa, { alg: "RS256" })], {
      spiffe_sequence: 42,
      spiffe_refresh_hint: 300,
    });
    const b = await parseJwksBundle(td, text);
    assert.equal(b.x509Authorities.length, 2);
    assert.deepEqual([...b.jwtAuthorities.keys()], ["C6vs25welZOx6WksNYfbMfiw9l96pMnD", "rsa-1"]);
    assert.deepEqual(b.jwtAuthorities.get("rsa-1"), { kty: "RSA", n: jwtRsa.n, e: jwtRsa.e, alg: "RS256" });
  });

  const ignored: [string, unknown][] = [
    ["an unknown use (4.2.2)", { ...jwtKey("a"), use: "wit-svid" }],
    ["a use that differs in case (4.2.2)", { ...jwtKey("a"), use: "JWT-SVID" }],
    ["an unknown kty (4.2.1)", { kty: "OKP", use: "jwt-svid", kid: "a", crv: "Ed25519", x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" }],
    ["an x509-svid key without x5c (X509-SVID 6.2)", { ...x509Key(ec), x5c: undefined }],
    ["an x509-svid key with an empty x5c (X509-SVID 6.2)", { ...x509Key(ec), x5c: [] }],
  ];
  for (const [name, key] of ignored) {
    test(`and ignores ${name}`, async () => {
      const b = await parseJwksBundle(td, doc([key, x509Key(ec2)]));
      assert.equal(b.x509Authorities.length, 1);
      assert.equal(b.jwtAuthorities.size, 0);
    });
  }

  test("only the first x5c certificate (X509-SVID 6.2)", async () => {
    const b = await parseJwksBundle(td, doc([{ ...x509Key(ec), x5c: [ec.b64, rsa.b64, "not even base64"] }]));
    assert.equal(b.x509Authorities.length, 1);
    assert.deepEqual(b.x509Authorities[0], ec.der);
  });

  test("a kid on an x509-svid key, unknown members, null optional members", async () => {
    const b = await parseJwksBundle(td, doc([x509Key(ec, { kid: "k", x5t: "abc", alg: "ES256" })], {
      spiffe_sequence: null,
      spiffe_refresh_hint: null,
      issuer: "x",
    }));
    assert.equal(b.x509Authorities.length, 1);
    assert.equal(b.sequence, undefined);
  });

  test("the same root twice, kept once", async () => {
    const b = await parseJwksBundle(td, doc([x509Key(ec), x509Key(ec)]));
    assert.equal(b.x509Authorities.length, 1);
  });

  test("a refresh hint of 0 and a sequence of 2^53-1", async () => {
    const b = await parseJwksBundle(td, doc([], { spiffe_refresh_hint: 0, spiffe_sequence: Number.MAX_SAFE_INTEGER }));
    assert.equal(b.refreshHintSeconds, 0);
    assert.equal(b.sequence, Number.MAX_SAFE_INTEGER);
  });

  test("an RSA modulus written with a leading zero byte", async () => {
    const n = toBase64Url(new Uint8Array([0, ...fromBase64Url(rsa.pub.n!)!]));
    const b = await parseJwksBundle(td, doc([x509Key(rsa, { n })]));
    assert.equal(b.x509Authorities.length, 1);
  });
});

describe("formatJwksBundle", () => {
  const full = Bundle.create(td, {
    x509Authorities: [ec.der, rsa.der, ec384.der],
    jwtAuthorities: new Map<string, JsonWebKey>([["z", jwtEc], ["a", { ...jwtRsa, alg: "PS256" }]]),
    sequence: 7,
    refreshHintSeconds: 3600,
  });

  test("round trip: parse(format(b)) equals b, and formats to the same text", async () => {
    for (const b of [full, Bundle.create(td), full.withSequence(undefined).withRefreshHint(undefined)]) {
      const text = await formatJwksBundle(b);
      const back = await parseJwksBundle(td, text);
      assert.ok(back.equals(b), text);
      assert.equal(await formatJwksBundle(back), text);
    }
  });

  test("writes the members in a fixed order, x5c in standard base64, jwt keys sorted by kid", async () => {
    const parsed = JSON.parse(await formatJwksBundle(full)) as { keys: Record<string, unknown>[] };
    assert.deepEqual(Object.keys(parsed), ["spiffe_sequence", "spiffe_refresh_hint", "keys"]);
    assert.deepEqual(parsed.keys[0], { kty: "EC", use: "x509-svid", crv: "P-256", x: ec.pub.x, y: ec.pub.y, x5c: [ec.b64] });
    assert.deepEqual(Object.keys(parsed.keys[1]!), ["kty", "use", "n", "e", "x5c"]);
    assert.equal((parsed.keys[2]!.x as string).length, 64); // P-384: 48 bytes, base64url
    assert.deepEqual(parsed.keys.slice(3).map((k) => k.kid), ["a", "z"]);
    assert.deepEqual(parsed.keys[3], { kty: "RSA", use: "jwt-svid", kid: "a", alg: "PS256", n: jwtRsa.n, e: jwtRsa.e });
  });

  test("indents when asked", async () => {
    assert.equal(await formatJwksBundle(Bundle.create(td), { indent: 2 }), '{\n  "keys": []\n}');
  });
});

describe("parseJwksBundle on untrusted input", () => {
  const valid = JSON.parse(doc([x509Key(ec), jwtKey("a"), jwtKey("b", jwtRsa)], { spiffe_sequence: 1, spiffe_refresh_hint: 60 }));

  async function returnsOrThrowsOurs(text: string): Promise<boolean> {
    try {
      const b = await parseJwksBundle(td, text);
      return b instanceof Bundle;
    } catch (e) {
      return isTidegateError(e) && (BUNDLE_ERROR_CODES as readonly string[]).includes(e.code);
    }
  }

  test("arbitrary strings", async () => {
    await fc.assert(fc.asyncProperty(fc.string({ maxLength: 200 }), returnsOrThrowsOurs), { numRuns: fuzzRuns(300) });
  });

  test("arbitrary JSON", async () => {
    await fc.assert(fc.asyncProperty(fc.json({ maxDepth: 4 }), returnsOrThrowsOurs), { numRuns: fuzzRuns(300) });
  });

  test("a valid document with one member changed or removed", async () => {
    const paths: (string | number)[][] = [];
    const walk = (v: unknown, path: (string | number)[]) => {
      paths.push(path);
      if (Array.isArray(v)) v.forEach((x, i) => walk(x, [...path, i]));
      else if (typeof v === "object" && v !== null) for (const [k, x] of Object.entries(v)) walk(x, [...path, k]);
    };
    walk(valid, []);
    const mutation = fc.record({
      path: fc.constantFrom(...paths.filter((p) => p.length > 0)),
      value: fc.oneof(fc.constant(undefined), fc.jsonValue({ maxDepth: 2 }), fc.string(), fc.integer()),
    });
    await fc.assert(
      fc.asyncProperty(mutation, async ({ path, value }) => {
        const copy = structuredClone(valid);
        let node = copy;
        for (const k of path.slice(0, -1)) node = node[k];
        node[path.at(-1)!] = value;
        return returnsOrThrowsOurs(JSON.stringify(copy));
      }),
      { numRuns: fuzzRuns(300) },
    );
  });
});
