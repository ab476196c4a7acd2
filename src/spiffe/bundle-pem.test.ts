import fc from "fast-check";
import { fuzzRuns } from "../../test/fuzz-runs.ts";
import { isTidegateError } from "../errors.ts";
import { subtle } from "../x509/engine.ts";
import { encodePem } from "../x509/pem.ts";
import { assert, describe, test } from "../../test/shim.ts";
import { createTestCa } from "../../test/helpers/test-ca.ts";
import { BUNDLE_ERROR_CODES, Bundle } from "./bundle.ts";
import { formatPemBundle, parsePemBundle } from "./bundle-pem.ts";
import { MAX_BUNDLE_BYTES } from "./jwks.ts";
import { TrustDomain } from "./trust-domain.ts";

const td = TrustDomain.parse("example.org");
const rootA = (await createTestCa({ trustDomain: td.name })).root.der;
const rootB = (await createTestCa({ trustDomain: td.name })).root.der;
const pemA = encodePem("CERTIFICATE", rootA);
const pemB = encodePem("CERTIFICATE", rootB);

function codeOf(text: string): string | null {
  try {
    parsePemBundle(td, text);
    return null;
  } catch (e) {
    if (isTidegateError(e)) return e.code;
    throw e;
  }
}

describe("parsePemBundle", () => {
  test("round trip: format then parse gives the same bundle and the same text", () => {
    const b = Bundle.create(td, { x509Authorities: [rootA, rootB] });
    const text = formatPemBundle(b);
    assert.equal(text, pemA + pemB);
    const back = parsePemBundle(td, text);
    assert.ok(back.equals(b));
    assert.ok(back.trustDomain.equals(td));
    assert.equal(formatPemBundle(back), text);
  });

  test("reads openssl-style text: comments between blocks, CRLF line ends, duplicates kept once", () => {
    const text = `# roots of example.org\nsubject=O = example.org\n${pemA}\r\n${pemB.replace(/\n/g, "\r\n")}${pemA}`;
    const b = parsePemBundle(td, text);
    assert.deepEqual(b.x509Authorities, [rootA, rootB]);
  });

  const rejected: [string, string, string][] = [
    ["empty text", "", "bundle_empty"],
    ["text without PEM", "hello", "bundle_empty"],
    ["a private key after a certificate", pemA + encodePem("PRIVATE KEY", new Uint8Array([1, 2, 3])), "bundle_pem_bad_label"],
    ["a certificate request", encodePem("CERTIFICATE REQUEST", rootA), "bundle_pem_bad_label"],
    ["a trusted certificate (openssl)", encodePem("TRUSTED CERTIFICATE", rootA), "bundle_pem_bad_label"],
    ["bad base64", "-----BEGIN CERTIFICATE-----\n@@@@\n-----END CERTIFICATE-----\n", "bundle_pem_malformed"],
    ["a missing END line", pemA.slice(0, -26), "bundle_pem_malformed"],
    ["mismatched labels", pemA.replace("END CERTIFICATE", "END X509 CRL"), "bundle_pem_malformed"],
    ["a block that is not a certificate", encodePem("CERTIFICATE", new Uint8Array([0x30, 0x00])), "bundle_bad_certificate"],
    ["a certificate with a trailing byte", encodePem("CERTIFICATE", new Uint8Array([...rootA, 0])), "bundle_bad_certificate"],
    ["too large", pemA + " ".repeat(MAX_BUNDLE_BYTES), "bundle_too_large"],
  ];
  for (const [name, text, code] of rejected) {
    test(`rejects ${name} with ${code}`, () => {
      assert.equal(codeOf(text), code);
      assert.ok((BUNDLE_ERROR_CODES as readonly string[]).includes(code));
    });
  }

  test("keeps the PEM error as the cause", () => {
    try {
      parsePemBundle(td, "-----BEGIN CERTIFICATE-----\n@@@@\n-----END CERTIFICATE-----\n");
      assert.fail("expected an error");
    } catch (e) {
      assert.ok(isTidegateError(e, "bundle_pem_malformed"));
      assert.ok(isTidegateError(e.cause, "pem_bad_base64"));
    }
  });
});

describe("formatPemBundle", () => {
  test("writes X.509 authorities only, in bundle order", async () => {
    const k = (await subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["verify", "sign"])) as CryptoKeyPair;
    const { kty, crv, x, y } = await subtle.exportKey("jwk", k.publicKey);
    const jwtAuthorities = { k1: { kty, crv, x, y } };
    assert.equal(formatPemBundle(Bundle.create(td, { jwtAuthorities, sequence: 3 })), "");
    assert.equal(formatPemBundle(Bundle.create(td, { x509Authorities: [rootB, rootA], jwtAuthorities })), pemB + pemA);
  });
});

describe("parsePemBundle on untrusted input", () => {
  const valid = pemA + pemB;

  function returnsOrThrowsOurs(text: string): boolean {
    try {
      return parsePemBundle(td, text) instanceof Bundle;
    } catch (e) {
      return isTidegateError(e) && (BUNDLE_ERROR_CODES as readonly string[]).includes(e.code);
    }
  }

  test("arbitrary strings", () => {
    fc.assert(fc.property(fc.string({ maxLength: 300 }), returnsOrThrowsOurs), { numRuns: fuzzRuns(300) });
  });

  test("arbitrary text around a BEGIN CERTIFICATE line", () => {
    const text = fc.tuple(fc.string(), fc.string({ maxLength: 200 }), fc.string()).map(
      ([a, body, c]) => `${a}\n-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n${c}`,
    );
    fc.assert(fc.property(text, returnsOrThrowsOurs), { numRuns: fuzzRuns(300) });
  });

  test("a valid bundle with characters replaced, removed or inserted", () => {
    const edit = fc.record({
      at: fc.nat({ max: valid.length - 1 }),
      remove: fc.nat({ max: 40 }),
      insert: fc.string({ maxLength: 8 }),
    });
    fc.assert(
      fc.property(edit, ({ at, remove, insert }) =>
        returnsOrThrowsOurs(valid.slice(0, at) + insert + valid.slice(at + remove))),
      { numRuns: fuzzRuns(300) },
    );
  });
});
