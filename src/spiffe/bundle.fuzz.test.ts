/**
 * Property tests of the SPIFFE bundle parsers (../shared/STYLE.md point 6), beside those in
 * jwks.test.ts and bundle-pem.test.ts: bundles of any mix of authorities, sequence and refresh hint
 * survive format then parse; a valid JWK Set with one to three structural edits (values replaced
 * by hostile JSON, members removed or added under prototype names, entries doubled or swapped,
 * near-miss spellings) or text edits gives a Bundle or a BundleError, never anything else; what it
 * gives is canonical (format then parse gives it back) and holds no X.509 authority or EC key that
 * was not in the document; a PEM bundle with its blocks in any order, repeated, between any text,
 * parses to its set of certificates.
 */
import fc from "fast-check";
import { fuzzRuns } from "../../test/fuzz-runs.ts";
import { editedText, mutatedJson } from "../../test/helpers/json-mutations.ts";
import { createTestCa } from "../../test/helpers/test-ca.ts";
import { assert, describe, test } from "../../test/shim.ts";
import { fromBase64Url, toBase64, toHex } from "../x509/encoding.ts";
import { subtle } from "../x509/engine.ts";
import { encodePem } from "../x509/pem.ts";
import { BUNDLE_ERROR_CODES, Bundle, BundleError } from "./bundle.ts";
import { formatPemBundle, parsePemBundle } from "./bundle-pem.ts";
import { formatJwksBundle, parseJwksBundle } from "./jwks.ts";
import { TrustDomain } from "./trust-domain.ts";

const RUNS = fuzzRuns(120);
const td = TrustDomain.parse("example.org");

const roots = await Promise.all([0, 1, 2].map(async () => (await createTestCa({ trustDomain: td.name })).root.der));
const inter = (await (await createTestCa({ trustDomain: td.name })).mintIntermediate()).der;
const x509 = [...roots, inter];

async function publicJwk(alg: EcKeyGenParams | RsaHashedKeyGenParams): Promise<JsonWebKey> {
  const keys = (await subtle.generateKey(alg, true, ["sign", "verify"])) as CryptoKeyPair;
  const { kty, crv, x, y, n, e } = await subtle.exportKey("jwk", keys.publicKey);
  return kty === "EC" ? { kty, crv, x, y } : { kty, n, e };
}
const jwtKeys: [string, JsonWebKey][] = [
  ["ec256", await publicJwk({ name: "ECDSA", namedCurve: "P-256" })],
  ["ec384", { ...(await publicJwk({ name: "ECDSA", namedCurve: "P-384" })), alg: "ES384" }],
  ["ec521", await publicJwk({ name: "ECDSA", namedCurve: "P-521" })],
  ["rsa", { ...(await publicJwk({ name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" })), alg: "RS256" }],
];

const full = Bundle.create(td, { x509Authorities: x509, jwtAuthorities: new Map(jwtKeys), sequence: 7, refreshHintSeconds: 300 });
const fullText = await formatJwksBundle(full);
const fullDoc = JSON.parse(fullText) as unknown;

/** An EC key's curve and point, as bytes (a base64url text has more than one spelling). */
const pointOf = (k: JsonWebKey) => `${k.crv}|${toHex(fromBase64Url(k.x ?? "") ?? new Uint8Array())}|${toHex(fromBase64Url(k.y ?? "") ?? new Uint8Array())}`;
const ecPoints = new Set(jwtKeys.filter(([, k]) => k.kty === "EC").map(([, k]) => pointOf(k)));

/**
 * Parses `text`: a canonical Bundle or a BundleError (checked). Its X.509 authorities are
 * certificates the text holds (an edit inside one may leave another valid certificate: a bundle
 * authority's own signature is not checked, it is a trust anchor); its EC keys are the original
 * ones (no edit makes another point on the curve).
 */
async function parsesOrRefuses(text: string): Promise<"parsed" | "refused"> {
  let b: Bundle;
  try {
    b = await parseJwksBundle(td, text);
  } catch (e) {
    if (!(e instanceof BundleError)) throw e;
    assert.ok((BUNDLE_ERROR_CODES as readonly string[]).includes(e.code), e.code);
    assert.ok(e.message.startsWith("bundle: "), e.message);
    assert.doesNotMatch(e.message, /native code|\[object /, "a message names the input, not a JavaScript internal");
    return "refused";
  }
  assert.ok((await parseJwksBundle(td, await formatJwksBundle(b))).equals(b), "format then parse gives the bundle back");
  // the document's strings as JSON decodes them (an edit may escape a character, as in "\/")
  const strings: string[] = [];
  const collect = (x: unknown): void => {
    if (typeof x === "string") strings.push(x);
    else if (Array.isArray(x)) x.forEach(collect);
    else if (typeof x === "object" && x !== null) Object.values(x).forEach(collect);
  };
  collect(JSON.parse(text));
  for (const der of b.x509Authorities) assert.ok(strings.some((t) => t.includes(toBase64(der))), "an X.509 authority the document did not hold");
  for (const k of b.jwtAuthorities.values()) if (k.kty === "EC") assert.ok(ecPoints.has(pointOf(k)), "an EC key the document did not hold");
  return "parsed";
}

describe("parseJwksBundle", () => {
  test("any mix of authorities, sequence and refresh hint: format then parse gives the bundle back, and the same text", async () => {
    const counter = fc.option(fc.oneof(fc.nat(), fc.constant(0), fc.constant(Number.MAX_SAFE_INTEGER)), { nil: undefined });
    await fc.assert(
      fc.asyncProperty(fc.subarray(x509), fc.subarray(jwtKeys), counter, counter, async (certs, keys, sequence, refreshHintSeconds) => {
        const b = Bundle.create(td, { x509Authorities: certs, jwtAuthorities: new Map(keys), sequence, refreshHintSeconds });
        const text = await formatJwksBundle(b);
        const back = await parseJwksBundle(td, text);
        assert.ok(back.equals(b));
        assert.equal(await formatJwksBundle(back), text);
      }),
      { numRuns: fuzzRuns(50) },
    );
  });

  test("a valid document with structural edits: a canonical Bundle of its own keys, or BundleError", async () => {
    const outcomes = new Set<string>();
    await fc.assert(
      fc.asyncProperty(mutatedJson(fullDoc), async (doc) => {
        outcomes.add(await parsesOrRefuses(JSON.stringify(doc) ?? "undefined"));
      }),
      { numRuns: RUNS },
    );
    assert.deepEqual([...outcomes].sort(), ["parsed", "refused"]);
  });

  test("a valid document with text edits: a Bundle or BundleError", async () => {
    await fc.assert(
      fc.asyncProperty(editedText(fullText), async (text) => void (await parsesOrRefuses(text))),
      { numRuns: RUNS },
    );
  });
});

describe("parsePemBundle", () => {
  const blocks = x509.map((der) => encodePem("CERTIFICATE", der));
  const between = fc.oneof(fc.constant(""), fc.constantFrom("\n", "junk\n", "# comment\n", "\r\n\r\n"), fc.string({ maxLength: 20 }).map((s) => `${s.replace(/-/g, "")}\n`));

  test("blocks in any order, repeated, between any text: the set of their certificates, and format then parse gives it back", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(x509.length - 1), between), { minLength: 1, maxLength: 8 }), between, (picks, head) => {
        const text = head + picks.map(([i, gap]) => blocks[i]! + gap).join("");
        const b = parsePemBundle(td, text);
        const want = [...new Set(picks.map(([i]) => i))];
        assert.equal(b.x509Authorities.length, want.length);
        for (const i of want) assert.ok(b.hasX509Authority(x509[i]!));
        assert.ok(parsePemBundle(td, formatPemBundle(b)).equals(b));
      }),
      { numRuns: RUNS },
    );
  });

  test("a block's base64 with characters changed: a Bundle of readable certificates or BundleError", () => {
    const pem = blocks[0]!;
    const bodyStart = pem.indexOf("\n") + 1;
    const bodyEnd = pem.lastIndexOf("-----END");
    const edit = fc.array(fc.tuple(fc.integer({ min: bodyStart, max: bodyEnd - 1 }), fc.constantFrom(..."AZaz09+/=\n -.")), { minLength: 1, maxLength: 4 });
    fc.assert(
      fc.property(edit, (edits) => {
        let text = pem;
        for (const [at, ch] of edits) text = text.slice(0, at) + ch + text.slice(at + 1);
        try {
          const b = parsePemBundle(td, text);
          assert.equal(b.x509Authorities.length, 1);
        } catch (e) {
          if (!(e instanceof BundleError)) throw e;
        }
      }),
      { numRuns: RUNS },
    );
  });
});
