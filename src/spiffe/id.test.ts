import fc from "fast-check";
import { fuzzRuns } from "../../test/fuzz-runs.ts";
import { assert, describe, test, codeOf as codeOfError, errorOf as errorOfClass } from "../../test/shim.ts";
import { SPIFFE_ID_ERROR_CODES, SpiffeIdError, quote } from "./errors.ts";
import { SpiffeId } from "./id.ts";
import { TrustDomain } from "./trust-domain.ts";

// Explicitly typed: TypeScript only allows assertion-signature calls through a declared type.

const codeOf = (fn: () => unknown) => codeOfError(fn, SpiffeIdError);

const errorOf = (fn: () => unknown) => errorOfClass(fn, SpiffeIdError);

const accepted: [string, string, string][] = [
  ["spiffe://example.org", "example.org", ""],
  ["spiffe://example.org/workload", "example.org", "/workload"],
  ["spiffe://example.org/ns/prod/sa/Web_1-a.b", "example.org", "/ns/prod/sa/Web_1-a.b"],
  ["spiffe://a", "a", ""],
  ["spiffe://1.2.3.4/x", "1.2.3.4", "/x"],
  ["spiffe://under_score-dash.example/x", "under_score-dash.example", "/x"],
  ["spiffe://example.org/...", "example.org", "/..."],
  ["spiffe://example.org/.a/a./..b", "example.org", "/.a/a./..b"],
  ["spiffe://..", "..", ""],
  ["spiffe://example.org/A/Z/0/9/_/-", "example.org", "/A/Z/0/9/_/-"],
];

const rejected: [string, string][] = [
  ["", "spiffeid_empty"],
  ["example.org", "spiffeid_wrong_scheme"],
  ["SPIFFE://example.org", "spiffeid_wrong_scheme"],
  ["Spiffe://example.org", "spiffeid_wrong_scheme"],
  ["spiffe:/example.org", "spiffeid_wrong_scheme"],
  ["spiffe:example.org", "spiffeid_wrong_scheme"],
  ["https://example.org/x", "spiffeid_wrong_scheme"],
  [" spiffe://example.org", "spiffeid_wrong_scheme"],
  ["spiffe://", "spiffeid_missing_trust_domain"],
  ["spiffe:///", "spiffeid_missing_trust_domain"],
  ["spiffe:///path", "spiffeid_missing_trust_domain"],
  ["spiffe://Example.org", "spiffeid_bad_trust_domain_char"],
  ["spiffe://exa mple.org", "spiffeid_bad_trust_domain_char"],
  ["spiffe://example.org\n", "spiffeid_bad_trust_domain_char"],
  ["spiffe://[::1]/x", "spiffeid_bad_trust_domain_char"],
  ["spiffe://exämple.org", "spiffeid_bad_trust_domain_char"],
  ["spiffe://example.org/a b", "spiffeid_bad_path_segment_char"],
  ["spiffe://example.org/a:b", "spiffeid_bad_path_segment_char"],
  ["spiffe://example.org/a@b", "spiffeid_bad_path_segment_char"],
  ["spiffe://example.org/a*", "spiffeid_bad_path_segment_char"],
  ["spiffe://example.org/é", "spiffeid_bad_path_segment_char"],
  ["spiffe://example.org/a\\b", "spiffeid_bad_path_segment_char"],
  ["spiffe://example.org//", "spiffeid_empty_segment"],
  ["spiffe://example.org//a", "spiffeid_empty_segment"],
  ["spiffe://example.org/a//b", "spiffeid_empty_segment"],
  ["spiffe://example.org/.", "spiffeid_dot_segment"],
  ["spiffe://example.org/..", "spiffeid_dot_segment"],
  ["spiffe://example.org/a/./b", "spiffeid_dot_segment"],
  ["spiffe://example.org/a/../b", "spiffeid_dot_segment"],
  ["spiffe://example.org/", "spiffeid_trailing_slash"],
  ["spiffe://example.org/a/", "spiffeid_trailing_slash"],
  ["spiffe://example.org?x=1", "spiffeid_query"],
  ["spiffe://example.org/a?x=1", "spiffeid_query"],
  ["spiffe://example.org/a?", "spiffeid_query"],
  ["spiffe://?", "spiffeid_query"],
  ["spiffe://example.org#frag", "spiffeid_fragment"],
  ["spiffe://example.org/a#frag", "spiffeid_fragment"],
  ["spiffe://example.org/a#b?c", "spiffeid_fragment"],
  ["spiffe://example.org:8080/a", "spiffeid_port"],
  ["spiffe://example.org:/a", "spiffeid_port"],
  ["spiffe://user@example.org/a", "spiffeid_userinfo"],
  ["spiffe://user:pw@example.org/a", "spiffeid_userinfo"],
  ["spiffe://@example.org", "spiffeid_userinfo"],
  ["spiffe://ex%61mple.org", "spiffeid_percent_encoding"],
  ["spiffe://example.org/a%20b", "spiffeid_percent_encoding"],
  ["spiffe://example.org/%2e", "spiffeid_percent_encoding"],
  // Precedence: the first offending character, left to right, decides.
  ["spiffe://Example.org/a?b", "spiffeid_bad_trust_domain_char"],
  ["spiffe://example.org/a b?c", "spiffeid_bad_path_segment_char"],
  ["spiffe://example.org/a?b c", "spiffeid_query"],
  ["spiffe://example.org//a b", "spiffeid_empty_segment"],
  ["spiffe://example.org/a b//", "spiffeid_bad_path_segment_char"],
  ["spiffe://example.org:80@x", "spiffeid_userinfo"],
  ["spiffe://example.org:80/@x", "spiffeid_port"],
  ["spiffe://example.org/./", "spiffeid_dot_segment"],
];

describe("SpiffeId.parse", () => {
  for (const [input, td, path] of accepted) {
    test(`accepts ${JSON.stringify(input)}`, () => {
      const id = SpiffeId.parse(input);
      assert.equal(id.trustDomain.name, td);
      assert.equal(id.path, path);
      assert.equal(id.toString(), input);
    });
  }

  for (const [input, code] of rejected) {
    test(`rejects ${JSON.stringify(input)} with ${code}`, () => {
      assert.equal(codeOf(() => SpiffeId.parse(input)), code);
    });
  }

  test("every code used above is in SPIFFE_ID_ERROR_CODES", () => {
    for (const [, code] of rejected) assert.ok((SPIFFE_ID_ERROR_CODES as readonly string[]).includes(code), code);
  });

  test("exact messages", () => {
    assert.equal(
      errorOf(() => SpiffeId.parse("spiffe://Example.org")).message,
      'spiffeid: "spiffe://Example.org" has an invalid trust domain character "E" at 9',
    );
    assert.equal(
      errorOf(() => SpiffeId.parse("spiffe://example.org/a\u0000b")).message,
      'spiffeid: "spiffe://example.org/a\\u0000b" has an invalid path segment character "\\u0000" at 22',
    );
    assert.equal(
      errorOf(() => SpiffeId.parse("spiffe://example.org/a//b")).message,
      'spiffeid: "spiffe://example.org/a//b" has an empty segment at 23',
    );
    assert.equal(
      errorOf(() => SpiffeId.parse("spiffe://example.org/a?x")).message,
      'spiffeid: "spiffe://example.org/a?x" has a query ("?" at 22)',
    );
    assert.equal(
      errorOf(() => SpiffeId.parse("http://x")).message,
      'spiffeid: "http://x" does not start with "spiffe://"',
    );
    assert.equal(errorOf(() => SpiffeId.parse("")).message, "spiffeid: the SPIFFE ID is empty");
  });

  test("messages cut long inputs and escape non-ASCII", () => {
    const e = errorOf(() => SpiffeId.parse(`spiffe://example.org/${"a".repeat(200)}/\u00e9`));
    assert.equal(e.code, "spiffeid_bad_path_segment_char");
    assert.ok(e.message.startsWith(`spiffeid: "spiffe://example.org/${"a".repeat(79)}"... has`), e.message);
    assert.ok(e.message.endsWith('character "\\u00e9" at 222'), e.message);
    assert.equal(quote("\u{1f600}"), '"\\ud83d\\ude00"');
  });

  test("errors are SpiffeIdError and frozen values are immutable", () => {
    assert.throws(() => SpiffeId.parse("x"), SpiffeIdError);
    const id = SpiffeId.parse("spiffe://example.org/a");
    assert.ok(Object.isFrozen(id));
    assert.ok(Object.isFrozen(id.trustDomain));
  });
});

describe("SpiffeId.fromPath and fromSegments", () => {
  const td = TrustDomain.parse("example.org");

  test("build the same IDs as parse", () => {
    assert.equal(SpiffeId.fromPath(td, "").toString(), "spiffe://example.org");
    assert.equal(SpiffeId.fromPath(td, "/a/b").toString(), "spiffe://example.org/a/b");
    assert.equal(SpiffeId.fromSegments(td).toString(), "spiffe://example.org");
    assert.equal(SpiffeId.fromSegments(td, "a", "B", "c.d").toString(), "spiffe://example.org/a/B/c.d");
    assert.ok(SpiffeId.fromSegments(td, "a", "b").equals(SpiffeId.parse("spiffe://example.org/a/b")));
  });

  const badPaths: [string, string][] = [
    ["a/b", "spiffeid_no_leading_slash"],
    ["/", "spiffeid_trailing_slash"],
    ["/a/", "spiffeid_trailing_slash"],
    ["//a", "spiffeid_empty_segment"],
    ["/./a", "spiffeid_dot_segment"],
    ["/a b", "spiffeid_bad_path_segment_char"],
    ["/a?b", "spiffeid_query"],
    ["/a#b", "spiffeid_fragment"],
    ["/a%20", "spiffeid_percent_encoding"],
    [`/${"a".repeat(2048 - 20)}`, "spiffeid_too_long"],
  ];
  for (const [path, code] of badPaths) {
    test(`fromPath rejects ${JSON.stringify(path.slice(0, 20))} with ${code}`, () => {
      assert.equal(codeOf(() => SpiffeId.fromPath(td, path)), code);
    });
  }

  const badSegments: [string[], string][] = [
    [[""], "spiffeid_empty_segment"],
    [["a", ""], "spiffeid_empty_segment"],
    [["."], "spiffeid_dot_segment"],
    [[".."], "spiffeid_dot_segment"],
    [["a/b"], "spiffeid_bad_path_segment_char"],
    [["a b"], "spiffeid_bad_path_segment_char"],
    [["a%2f"], "spiffeid_percent_encoding"],
    [["?"], "spiffeid_query"],
    [["#"], "spiffeid_fragment"],
    [["a".repeat(2048)], "spiffeid_too_long"],
  ];
  for (const [segs, code] of badSegments) {
    test(`fromSegments rejects ${JSON.stringify(segs.map((s) => s.slice(0, 10)))} with ${code}`, () => {
      assert.equal(codeOf(() => SpiffeId.fromSegments(td, ...segs)), code);
    });
  }

  test("fromSegments message names the segment and its own position", () => {
    assert.equal(
      errorOf(() => SpiffeId.fromSegments(td, "ok", "a/b")).message,
      'spiffeid: segment "a/b" has an invalid path segment character "/" at 1',
    );
  });
});

describe("SpiffeId equality and membership", () => {
  test("equals and memberOf", () => {
    const a = SpiffeId.parse("spiffe://example.org/a");
    assert.ok(a.equals(SpiffeId.parse("spiffe://example.org/a")));
    assert.ok(!a.equals(SpiffeId.parse("spiffe://example.org/A")));
    assert.ok(!a.equals(SpiffeId.parse("spiffe://example.com/a")));
    assert.ok(!a.equals(SpiffeId.parse("spiffe://example.org")));
    assert.ok(a.memberOf(TrustDomain.parse("example.org")));
    assert.ok(!a.memberOf(TrustDomain.parse("example.com")));
  });
});

describe("SpiffeId.parse properties", () => {
  function parsesOrThrowsOurs(s: string): void {
    let id: SpiffeId;
    try {
      id = SpiffeId.parse(s);
    } catch (e) {
      if (!(e instanceof SpiffeIdError)) throw e;
      assert.ok((SPIFFE_ID_ERROR_CODES as readonly string[]).includes(e.code));
      return;
    }
    assert.equal(id.toString(), s);
    assert.ok(SpiffeId.parse(id.toString()).equals(id));
  }

  test("random strings: a round-tripping SpiffeId or a SpiffeIdError", () => {
    fc.assert(fc.property(fc.string({ unit: "binary", maxLength: 300 }), parsesOrThrowsOurs), { numRuns: fuzzRuns(300) });
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (s) => parsesOrThrowsOurs(`spiffe://${s}`)),
      { numRuns: fuzzRuns(300) },
    );
  });

  test("strings of the alphabet and separators: a round-tripping SpiffeId or a SpiffeIdError", () => {
    const alphabet = "aZ09._-/:@?#%*A .".split("");
    const piece = fc.constantFrom(...alphabet, "..", "//", "/.", "/..", "spiffe://");
    const text = fc.array(piece, { maxLength: 40 }).map((p) => p.join(""));
    fc.assert(fc.property(text, (s) => parsesOrThrowsOurs(`spiffe://${s}`)), { numRuns: fuzzRuns(500) });
    fc.assert(fc.property(text, parsesOrThrowsOurs), { numRuns: fuzzRuns(200) });
  });

  test("generated valid IDs always parse back to themselves", () => {
    const tdChar = fc.constantFrom(..."abcxyz0189._-".split(""));
    const segChar = fc.constantFrom(..."aAzZ09._-".split(""));
    const td = fc.string({ unit: tdChar, minLength: 1, maxLength: 30 });
    const seg = fc.string({ unit: segChar, minLength: 1, maxLength: 10 }).filter((s) => s !== "." && s !== "..");
    fc.assert(
      fc.property(td, fc.array(seg, { maxLength: 6 }), (t, segs) => {
        const s = `spiffe://${t}${segs.map((x) => `/${x}`).join("")}`;
        const id = SpiffeId.parse(s);
        assert.equal(id.toString(), s);
        assert.ok(id.equals(SpiffeId.fromSegments(TrustDomain.parse(t), ...segs)));
      }),
      { numRuns: fuzzRuns(300) },
    );
  });
});
