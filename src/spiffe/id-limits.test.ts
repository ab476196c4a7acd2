// Character classes (every byte) and length limits of SPIFFE IDs: SPIFFE-ID standard 2.1, 2.2, 2.5.
import { assert, describe, test, codeOf as codeOfError, errorOf as errorOfClass } from "../../test/shim.ts";
import { SpiffeIdError, quote } from "./errors.ts";
import { SpiffeId } from "./id.ts";

// Explicitly typed: TypeScript only allows assertion-signature calls through a declared type.

const codeOf = (fn: () => unknown) => codeOfError(fn, SpiffeIdError);

const errorOf = (fn: () => unknown) => errorOfClass(fn, SpiffeIdError);

describe("SpiffeId.parse character classes (every byte 0-255)", () => {
  const tdAllowed = /^[a-z0-9._-]$/;
  const pathAllowed = /^[a-zA-Z0-9._-]$/;
  const special: Record<string, string> = {
    "?": "spiffeid_query",
    "#": "spiffeid_fragment",
    "%": "spiffeid_percent_encoding",
  };

  test("in the trust domain", () => {
    for (let b = 0; b < 256; b++) {
      const ch = String.fromCharCode(b);
      const input = `spiffe://a${ch}b/path`;
      if (ch === "/") {
        assert.equal(SpiffeId.parse(input).toString(), input);
        assert.equal(SpiffeId.parse(input).trustDomain.name, "a");
        continue;
      }
      if (tdAllowed.test(ch)) {
        assert.equal(SpiffeId.parse(input).trustDomain.name, `a${ch}b`);
        continue;
      }
      const want =
        special[ch] ?? (ch === ":" ? "spiffeid_port" : ch === "@" ? "spiffeid_userinfo" : "spiffeid_bad_trust_domain_char");
      const e = errorOf(() => SpiffeId.parse(input));
      assert.equal(e.code, want, `byte ${b}`);
      assert.ok(e.message.includes(`${quote(ch)} at 10`), `byte ${b}: ${e.message}`);
    }
  });

  test("in a path segment", () => {
    for (let b = 0; b < 256; b++) {
      const ch = String.fromCharCode(b);
      const input = `spiffe://example.org/a${ch}b`;
      if (ch === "/" || pathAllowed.test(ch)) {
        assert.equal(SpiffeId.parse(input).path, `/a${ch}b`, `byte ${b}`);
        continue;
      }
      const e = errorOf(() => SpiffeId.parse(input));
      assert.equal(e.code, special[ch] ?? "spiffeid_bad_path_segment_char", `byte ${b}`);
      assert.ok(e.message.includes(`${quote(ch)} at 22`), `byte ${b}: ${e.message}`);
    }
  });
});

describe("SpiffeId length limits", () => {
  const td255 = "a".repeat(251) + ".org";

  test("trust domain of 255 bytes is accepted, 256 rejected", () => {
    assert.equal(SpiffeId.parse(`spiffe://${td255}/x`).trustDomain.name.length, 255);
    assert.equal(codeOf(() => SpiffeId.parse(`spiffe://a${td255}/x`)), "spiffeid_trust_domain_too_long");
    assert.equal(codeOf(() => SpiffeId.parse(`spiffe://a${td255}`)), "spiffeid_trust_domain_too_long");
  });

  test("ID of 2048 bytes is accepted, 2049 rejected", () => {
    const prefix = "spiffe://example.org/";
    const id2048 = prefix + "a".repeat(2048 - prefix.length);
    assert.equal(id2048.length, 2048);
    assert.equal(SpiffeId.parse(id2048).toString(), id2048);
    assert.equal(codeOf(() => SpiffeId.parse(`${id2048}b`)), "spiffeid_too_long");
    const segmented = prefix + "ab/".repeat(674) + "abcde";
    assert.equal(segmented.length, 2048);
    assert.equal(SpiffeId.parse(segmented).toString(), segmented);
    assert.equal(codeOf(() => SpiffeId.parse(`${segmented}d`)), "spiffeid_too_long");
  });

  test("length counts UTF-8 bytes and is checked before characters", () => {
    const prefix = "spiffe://example.org/";
    assert.equal(codeOf(() => SpiffeId.parse(prefix + "\u00e9".repeat(1014))), "spiffeid_too_long");
    assert.equal(codeOf(() => SpiffeId.parse(prefix + "\u00e9".repeat(1013))), "spiffeid_bad_path_segment_char");
    assert.equal(codeOf(() => SpiffeId.parse(`spiffe://Example.org/${"a".repeat(3000)}`)), "spiffeid_too_long");
    assert.equal(codeOf(() => SpiffeId.parse(`spiffe://${"a".repeat(300)}/${"a".repeat(3000)}`)), "spiffeid_too_long");
  });

  test("huge input is rejected quickly", () => {
    assert.equal(codeOf(() => SpiffeId.parse(`spiffe://x/${"a".repeat(10_000_000)}`)), "spiffeid_too_long");
  });
});
