import fc from "fast-check";
import { fuzzRuns } from "../../test/fuzz-runs.ts";
import { test, describe, assert } from "../../test/shim.ts";
import { isTidegateError } from "../errors.ts";
import { createTestCa } from "../../test/helpers/test-ca.ts";
import { describeCertificate, fingerprintSha256, parseCertificate, readCertificate, serialHex } from "./cert.ts";
import { X509Error } from "./x509-errors.ts";
import { toHex } from "./encoding.ts";

const NOW = new Date("2026-03-01T12:00:00Z");
const ca = await createTestCa({ now: NOW });
const leaf = await ca.mintLeaf("/agent/a", { dnsNames: ["a.example.org"] });

describe("readCertificate / parseCertificate", () => {
  test("a minted leaf reads the same through both", () => {
    const info = readCertificate(leaf.der);
    const pk = parseCertificate(leaf.der);
    assert.equal(pk.version, 2);
    assert.equal(info.version, 3);
    assert.equal(serialHex(info), toHex(pk.serialNumber.valueBlock.valueHexView));
    assert.equal(info.notAfter, pk.notAfter.value.getTime());
  });

  const bad: [string, () => Uint8Array][] = [
    ["empty input", () => new Uint8Array(0)],
    ["trailing byte", () => new Uint8Array([...leaf.der, 0])],
    ["truncated", () => leaf.der.subarray(0, leaf.der.length - 1)],
    ["indefinite length", () => new Uint8Array([0x30, 0x80, 0, 0])],
    ["non-minimal length", () => new Uint8Array([0x30, 0x81, 0x01, 0x00])],
    ["a lone SEQUENCE", () => new Uint8Array([0x30, 0x00])],
    ["not a SEQUENCE", () => new Uint8Array([0x04, 0x01, 0x00])],
  ];
  for (const [name, make] of bad) {
    test(`rejects ${name}: x509_malformed`, () => {
      for (const f of [readCertificate, parseCertificate]) {
        assert.throws(() => f(make()), (e: unknown) => e instanceof X509Error && e.code === "x509_malformed");
      }
    });
  }
});

describe("describeCertificate", () => {
  test("a leaf", async () => {
    const d = await describeCertificate(leaf.der);
    assert.equal(d.spiffeId, "spiffe://example.org/agent/a");
    assert.equal(d.trustDomain, "example.org");
    assert.equal(d.subject, "");
    assert.match(d.issuer, /^O=example\.org, CN=tidegate root CA, serialNumber=[0-9a-f]{32}$/);
    assert.equal(d.keyType, "EC P-256");
    assert.equal(d.isCa, false);
    assert.deepEqual(d.uriSans, ["spiffe://example.org/agent/a"]);
    assert.deepEqual(d.dnsSans, ["a.example.org"]);
    assert.deepEqual(d.keyUsage, ["digitalSignature"]);
    assert.deepEqual(d.extKeyUsage, ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]);
    assert.equal(d.sha256, await fingerprintSha256(leaf.der));
    assert.match(d.sha256, /^([0-9a-f]{2}:){31}[0-9a-f]{2}$/);
  });

  test("a certificate whose URI SAN is no SPIFFE ID", async () => {
    const c = await ca.mintCustom({ uris: ["https://x.example"] });
    const d = await describeCertificate(c.der);
    assert.equal(d.spiffeId, null);
    assert.equal(d.trustDomain, null);
    assert.deepEqual(d.uriSans, ["https://x.example"]);
  });
});

describe("certificate parser fuzz", () => {
  const check = (bytes: Uint8Array) => {
    for (const f of [readCertificate, parseCertificate]) {
      try {
        f(bytes);
      } catch (e) {
        if (!isTidegateError(e)) throw e;
      }
    }
  };

  test("random bytes: returns or throws a TidegateError", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), check), { numRuns: fuzzRuns(300) });
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (b) => check(new Uint8Array([0x30, 0x82, b.length >> 8, b.length & 0xff, ...b]))), { numRuns: fuzzRuns(200) });
  });

  test("mutated valid DER: returns or throws a TidegateError", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat({ max: leaf.der.length - 1 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.nat({ max: 6 }), (edits, cut) => {
        const d = leaf.der.slice(0, leaf.der.length - cut);
        for (const [i, b] of edits) if (i < d.length) d[i] = b;
        check(d);
      }),
      { numRuns: fuzzRuns(400) },
    );
  });
});
