import fc from "fast-check";
import { fuzzRuns } from "../../test/fuzz-runs.ts";
import { assert, describe, test } from "../../test/shim.ts";
import { bytesEqual, fromBase64, fromBase64Fallback, fromBase64Url, toArrayBuffer, toBase64, toBase64Fallback, toBase64Url, toHex } from "./encoding.ts";

// Explicitly typed: TypeScript only allows assertion-signature calls through a declared type.

const enc = (s: string) => new TextEncoder().encode(s);

describe("base64", () => {
  const vectors: [string, string, string][] = [
    // RFC 4648 section 10: bytes, base64, base64url
    ["", "", ""],
    ["f", "Zg==", "Zg"],
    ["fo", "Zm8=", "Zm8"],
    ["foo", "Zm9v", "Zm9v"],
    ["foob", "Zm9vYg==", "Zm9vYg"],
    ["fooba", "Zm9vYmE=", "Zm9vYmE"],
    ["foobar", "Zm9vYmFy", "Zm9vYmFy"],
  ];
  for (const [plain, b64, b64url] of vectors) {
    test(`RFC 4648 vector ${JSON.stringify(plain)}`, () => {
      assert.equal(toBase64(enc(plain)), b64);
      assert.equal(toBase64Url(enc(plain)), b64url);
      assert.deepEqual(fromBase64(b64), enc(plain));
      assert.deepEqual(fromBase64Url(b64url), enc(plain));
    });
  }

  test("url alphabet differs from the standard one", () => {
    const bytes = new Uint8Array([0xfb, 0xff, 0xbf]);
    assert.equal(toBase64(bytes), "+/+/");
    assert.equal(toBase64Url(bytes), "-_-_");
    assert.deepEqual(fromBase64("+/+/"), bytes);
    assert.deepEqual(fromBase64Url("-_-_"), bytes);
  });

  const badStd = [
    "Zg=", // padding with the wrong length
    "Z===", // three pad characters
    "Zg==Zg==", // padding in the middle
    "Z", // one character left over
    "Zm9vY", // five characters
    "Zg== ", // whitespace
    " Zg==",
    "Zm9v\nYmFy", // line break
    "Zm9v-_", // url alphabet
    "Zm9v*",
    "=",
    "==",
    "Zh==", // non-canonical: unused bits set (RFC 4648 section 3.5)
    "Zm9=", // non-canonical
    "Zh", // non-canonical, unpadded
    "\u00e9\u00e9\u00e9\u00e9",
  ];
  for (const text of badStd) {
    test(`fromBase64 rejects ${JSON.stringify(text)}`, () => assert.equal(fromBase64(text), null));
  }

  test("fromBase64 takes unpadded input when the length allows it", () => {
    assert.deepEqual(fromBase64("Zg"), enc("f"));
    assert.deepEqual(fromBase64("Zm8"), enc("fo"));
  });

  const badUrl = ["Zg==", "Zg=", "+/+/", "Z", "Zm9vY", "Zm 9", "Zh", "Zm9", "Zm_"];
  for (const text of badUrl) {
    test(`fromBase64Url rejects ${JSON.stringify(text)}`, () => assert.equal(fromBase64Url(text), null));
  }

  test("round trips of random bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        assert.deepEqual(fromBase64(toBase64(bytes)), bytes);
        assert.deepEqual(fromBase64Url(toBase64Url(bytes)), bytes);
        assert.ok(!toBase64Url(bytes).includes("="));
      }),
      { numRuns: fuzzRuns(300) },
    );
  });

  test("decoders return bytes that re-encode to the input, or null", () => {
    const text = fc.string({ unit: fc.constantFrom(..."AZaz09+/-_= ".split("")), maxLength: 24 });
    fc.assert(
      fc.property(text, (s) => {
        const std = fromBase64(s);
        if (std !== null) assert.equal(toBase64(std).replace(/=+$/, ""), s.replace(/=+$/, ""));
        const url = fromBase64Url(s);
        if (url !== null) assert.equal(toBase64Url(url), s);
      }),
      { numRuns: fuzzRuns(500) },
    );
  });

  test("large input (over one 32 KiB chunk) round trips", () => {
    const bytes = new Uint8Array(100_000).map((_, i) => (i * 31) & 0xff);
    assert.deepEqual(fromBase64(toBase64(bytes)), bytes);
  });
});

describe("hex, bytesEqual, toArrayBuffer", () => {
  test("toHex", () => {
    assert.equal(toHex(new Uint8Array([])), "");
    assert.equal(toHex(new Uint8Array([0, 1, 0xab, 0xff])), "0001abff");
    assert.equal(toHex(new Uint8Array([0xde, 0xad]), ":"), "de:ad");
  });

  test("bytesEqual", () => {
    assert.ok(bytesEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2])));
    assert.ok(!bytesEqual(new Uint8Array([1, 2]), new Uint8Array([1, 3])));
    assert.ok(!bytesEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2, 3])));
    assert.ok(bytesEqual(new Uint8Array([]), new Uint8Array([])));
  });

  test("toArrayBuffer holds exactly the view's bytes", () => {
    const whole = new Uint8Array([1, 2, 3]);
    assert.equal(toArrayBuffer(whole), whole.buffer);
    const view = new Uint8Array([9, 1, 2, 3, 9]).subarray(1, 4);
    const ab = toArrayBuffer(view);
    assert.equal(ab.byteLength, 3);
    assert.deepEqual(new Uint8Array(ab), new Uint8Array([1, 2, 3]));
  });
});

describe("the fallback for runtimes without native base64", () => {
  test("encodes and decodes exactly as the native path does", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 20000 }), (bytes) => {
        const text = toBase64(bytes);
        assert.equal(toBase64Fallback(bytes), text);
        const back = fromBase64Fallback(text);
        assert.ok(back !== null && bytesEqual(back, bytes));
      }),
      { numRuns: fuzzRuns(200) },
    );
  });
});
