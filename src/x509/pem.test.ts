import fc from "fast-check";
import { fuzzRuns } from "../../test/fuzz-runs.ts";
import { assert, describe, test, codeOf as codeOfError } from "../../test/shim.ts";
import { MAX_PEM_BYTES, PemError, decodePem, encodePem, looksLikePem } from "./pem.ts";

// Explicitly typed: TypeScript only allows assertion-signature calls through a declared type.

const DER = new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x05]);
const CERT = encodePem("CERTIFICATE", DER);

const codeOf = (fn: () => unknown) => codeOfError(fn, PemError);

describe("decodePem", () => {
  const accepted: [string, string, { label: string; der: number[] }[]][] = [
    ["one block", CERT, [{ label: "CERTIFICATE", der: [...DER] }]],
    ["two blocks", CERT + encodePem("PRIVATE KEY", new Uint8Array([1, 2, 3])), [
      { label: "CERTIFICATE", der: [...DER] },
      { label: "PRIVATE KEY", der: [1, 2, 3] },
    ]],
    ["text around and between blocks", `Bag Attributes\n  localKeyID: 01\n${CERT}subject=/CN=x\n${CERT}trailer`, [
      { label: "CERTIFICATE", der: [...DER] },
      { label: "CERTIFICATE", der: [...DER] },
    ]],
    ["CRLF line ends", CERT.replace(/\n/g, "\r\n"), [{ label: "CERTIFICATE", der: [...DER] }]],
    ["CR line ends", CERT.replace(/\n/g, "\r"), [{ label: "CERTIFICATE", der: [...DER] }]],
    ["indented lines and blank lines in the body", "  -----BEGIN X-----\n  MAM\n\n  CAQU=\n -----END X-----  ", [
      { label: "X", der: [...DER] },
    ]],
    ["empty label", "-----BEGIN -----\nAQ==\n-----END -----\n", [{ label: "", der: [1] }]],
    ["no final newline", CERT.trimEnd(), [{ label: "CERTIFICATE", der: [...DER] }]],
    ["END without BEGIN before a block is ignored", `-----END X-----\n${CERT}`, [{ label: "CERTIFICATE", der: [...DER] }]],
  ];
  for (const [name, text, want] of accepted) {
    test(`accepts ${name}`, () => {
      const got = decodePem(text).map((b) => ({ label: b.label, der: [...b.der] }));
      assert.deepEqual(got, want);
    });
  }

  const rejected: [string, string, string][] = [
    ["empty input", "", "pem_none"],
    ["plain text", "hello\nworld\n", "pem_none"],
    ["DER bytes as text", "0\u0003\u0002\u0001\u0005", "pem_none"],
    ["BEGIN with lowercase keyword", CERT.replace("BEGIN", "begin"), "pem_none"],
    ["BEGIN with four dashes", CERT.replace("-----BEGIN", "----BEGIN"), "pem_none"],
    ["BEGIN with a double space in the label", "-----BEGIN A  B-----\nAQ==\n-----END A  B-----\n", "pem_none"],
    ["BEGIN text not at the start of the line", `x${CERT}`, "pem_none"],
    ["no END", "-----BEGIN CERTIFICATE-----\nMAMCAQU=\n", "pem_unterminated"],
    ["a second BEGIN before END", `-----BEGIN CERTIFICATE-----\nMAMCAQU=\n${CERT}`, "pem_unterminated"],
    ["good block then one without END", `${CERT}-----BEGIN CERTIFICATE-----\nMAMCAQU=`, "pem_unterminated"],
    ["END label differs", "-----BEGIN CERTIFICATE-----\nMAMCAQU=\n-----END PRIVATE KEY-----\n", "pem_label_mismatch"],
    ["END label differs in case", "-----BEGIN CERTIFICATE-----\nMAMCAQU=\n-----END certificate-----\n", "pem_label_mismatch"],
    ["body not base64", "-----BEGIN X-----\nMAM*AQU=\n-----END X-----\n", "pem_bad_base64"],
    ["body with a header line", "-----BEGIN X-----\nProc-Type: 4,ENCRYPTED\nMAMCAQU=\n-----END X-----\n", "pem_bad_base64"],
    ["body with padding in the middle", "-----BEGIN X-----\nAQ==\nAQ==\n-----END X-----\n", "pem_bad_base64"],
    ["body with a bad length", "-----BEGIN X-----\nMAMCA\n-----END X-----\n", "pem_bad_base64"],
    ["body in base64url", "-----BEGIN X-----\n-_-_\n-----END X-----\n", "pem_bad_base64"],
    ["empty body", "-----BEGIN X-----\n-----END X-----\n", "pem_empty"],
    ["body of blank lines", "-----BEGIN X-----\n\n  \n-----END X-----\n", "pem_empty"],
    ["too large", CERT + " ".repeat(MAX_PEM_BYTES), "pem_too_large"],
  ];
  for (const [name, text, code] of rejected) {
    test(`rejects ${name} with ${code}`, () => {
      assert.equal(codeOf(() => decodePem(text)), code);
    });
  }

  test("exact messages name the label", () => {
    assert.throws(
      () => decodePem("-----BEGIN CERTIFICATE-----\nAQ==\n-----END X-----\n"),
      (e: unknown) => e instanceof PemError && e.message === 'pem: block "CERTIFICATE" ends with "X"',
    );
    assert.throws(
      () => decodePem("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"),
      (e: unknown) => e instanceof PemError && e.message === 'pem: block "CERTIFICATE" is empty',
    );
  });

  test("input of exactly MAX_PEM_BYTES is not too large", () => {
    const text = CERT + " ".repeat(MAX_PEM_BYTES - CERT.length);
    assert.equal(text.length, MAX_PEM_BYTES);
    assert.equal(decodePem(text).length, 1);
  });
});

describe("encodePem", () => {
  test("wraps base64 at 64 characters and ends with a newline", () => {
    const der = new Uint8Array(60).map((_, i) => i);
    const text = encodePem("CERTIFICATE", der);
    const lines = text.split("\n");
    assert.equal(lines[0], "-----BEGIN CERTIFICATE-----");
    assert.equal(lines[1]!.length, 64);
    assert.equal(lines[2]!.length, 80 - 64);
    assert.equal(lines[3], "-----END CERTIFICATE-----");
    assert.equal(lines[4], "");
  });

  test("round trips random DER and labels", () => {
    const labelChar = fc.constantFrom(..."ABCXYZ019!~".split(""));
    const label = fc
      .array(fc.tuple(fc.constantFrom("", "-", " "), labelChar), { minLength: 1, maxLength: 6 })
      .map((parts) => parts.map(([sep, c], i) => (i === 0 ? c : sep + c)).join(""));
    fc.assert(
      fc.property(label, fc.uint8Array({ minLength: 1, maxLength: 300 }), (l, der) => {
        const blocks = decodePem(encodePem(l, der) + encodePem(l, der));
        assert.equal(blocks.length, 2);
        assert.equal(blocks[0]!.label, l);
        assert.deepEqual(blocks[0]!.der, der);
      }),
      { numRuns: fuzzRuns(200) },
    );
  });
});

describe("looksLikePem", () => {
  test("PEM text yes, DER no", () => {
    assert.ok(looksLikePem(new TextEncoder().encode(`junk\n${CERT}`)));
    assert.ok(!looksLikePem(DER));
    assert.ok(!looksLikePem(new Uint8Array()));
  });
});

describe("decodePem properties", () => {
  function blocksOrPemError(text: string): void {
    try {
      const blocks = decodePem(text);
      assert.ok(blocks.length > 0);
      for (const b of blocks) assert.ok(b.der.length > 0);
    } catch (e) {
      if (!(e instanceof PemError)) throw e;
    }
  }

  test("random text: blocks or PemError, never anything else", () => {
    fc.assert(fc.property(fc.string({ unit: "binary", maxLength: 300 }), blocksOrPemError), { numRuns: fuzzRuns(300) });
  });

  test("PEM-like pieces: blocks or PemError, never anything else", () => {
    const piece = fc.constantFrom(
      "-----BEGIN X-----",
      "-----END X-----",
      "-----BEGIN Y-----",
      "-----END Y-----",
      "-----BEGIN -----",
      "\n",
      "\r\n",
      " ",
      "AQ==",
      "MAMCAQU=",
      "=",
      "A",
      "*",
    );
    const text = fc.array(piece, { maxLength: 30 }).map((p) => p.join(""));
    fc.assert(fc.property(text, blocksOrPemError), { numRuns: fuzzRuns(500) });
  });
});
