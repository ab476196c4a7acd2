import fc from "fast-check";
import { fuzzRuns } from "../../test/fuzz-runs.ts";
import { assert, describe, test, codeOf as codeOfError } from "../../test/shim.ts";
import { SPIFFE_ID_ERROR_CODES, SpiffeIdError } from "./errors.ts";
import { SpiffeId } from "./id.ts";
import { matchAny, matchId, matchMemberOf, matchOneOf, parsePattern } from "./match.ts";
import { TrustDomain } from "./trust-domain.ts";

// Explicitly typed: TypeScript only allows assertion-signature calls through a declared type.

const codeOf = (fn: () => unknown) => codeOfError(fn, SpiffeIdError);

const id = (s: string) => SpiffeId.parse(s);

// pattern, ID, expected match
const table: [string, string, boolean][] = [
  ["spiffe://example.org/agent/a", "spiffe://example.org/agent/a", true],
  ["spiffe://example.org/agent/a", "spiffe://example.org/agent/A", false],
  ["spiffe://example.org/agent/a", "spiffe://example.org/agent/a/b", false],
  ["spiffe://example.org/agent/a", "spiffe://example.com/agent/a", false],
  ["spiffe://example.org", "spiffe://example.org", true],
  ["spiffe://example.org", "spiffe://example.org/a", false],
  ["spiffe://example.org/agent/*", "spiffe://example.org/agent/a", true],
  ["spiffe://example.org/agent/*", "spiffe://example.org/agent/Bot-1.x", true],
  ["spiffe://example.org/agent/*", "spiffe://example.org/agent", false],
  ["spiffe://example.org/agent/*", "spiffe://example.org/agent/a/b", false],
  ["spiffe://example.org/agent/*", "spiffe://example.org/agents/a", false],
  ["spiffe://example.org/agent/*", "spiffe://other.org/agent/a", false],
  ["spiffe://example.org/*", "spiffe://example.org", false],
  ["spiffe://example.org/*", "spiffe://example.org/x", true],
  ["spiffe://example.org/*/db", "spiffe://example.org/prod/db", true],
  ["spiffe://example.org/*/db", "spiffe://example.org/prod/web", false],
  ["spiffe://example.org/*/*", "spiffe://example.org/a/b", true],
  ["spiffe://example.org/*/*", "spiffe://example.org/a", false],
  ["spiffe://example.org/agent/**", "spiffe://example.org/agent", true],
  ["spiffe://example.org/agent/**", "spiffe://example.org/agent/a", true],
  ["spiffe://example.org/agent/**", "spiffe://example.org/agent/a/b/c", true],
  ["spiffe://example.org/agent/**", "spiffe://example.org/agentx/a", false],
  ["spiffe://example.org/agent/**", "spiffe://example.org", false],
  ["spiffe://example.org/agent/**", "spiffe://example.net/agent/a", false],
  ["spiffe://example.org/**", "spiffe://example.org", true],
  ["spiffe://example.org/**", "spiffe://example.org/a/b", true],
  ["spiffe://example.org/**", "spiffe://example.org.evil/a", false],
  ["spiffe://example.org/*/x/**", "spiffe://example.org/a/x", true],
  ["spiffe://example.org/*/x/**", "spiffe://example.org/a/x/y/z", true],
  ["spiffe://example.org/*/x/**", "spiffe://example.org/a/y/z", false],
  ["spiffe://example.org/*/x/**", "spiffe://example.org/x", false],
];

const badPatterns: [string, string][] = [
  ["", "spiffeid_empty"],
  ["example.org/*", "spiffeid_wrong_scheme"],
  ["*", "spiffeid_wrong_scheme"],
  ["spiffe://*/a", "spiffeid_bad_trust_domain_char"],
  ["spiffe://*.example.org/a", "spiffeid_bad_trust_domain_char"],
  ["spiffe://Example.org/*", "spiffeid_bad_trust_domain_char"],
  ["spiffe:///*", "spiffeid_missing_trust_domain"],
  ["spiffe://example.org:1/*", "spiffeid_port"],
  ["spiffe://example.org/a*b", "spiffeid_bad_pattern"],
  ["spiffe://example.org/a*", "spiffeid_bad_pattern"],
  ["spiffe://example.org/*a", "spiffeid_bad_pattern"],
  ["spiffe://example.org/***", "spiffeid_bad_pattern"],
  ["spiffe://example.org/**/a", "spiffeid_bad_pattern"],
  ["spiffe://example.org/**/**", "spiffeid_bad_pattern"],
  ["spiffe://example.org/*/", "spiffeid_trailing_slash"],
  ["spiffe://example.org/**/", "spiffeid_bad_pattern"],
  ["spiffe://example.org//*", "spiffeid_empty_segment"],
  ["spiffe://example.org/../*", "spiffeid_dot_segment"],
  ["spiffe://example.org/a b/*", "spiffeid_bad_path_segment_char"],
  ["spiffe://example.org/*?x", "spiffeid_query"],
  ["spiffe://example.org/*#x", "spiffeid_fragment"],
  ["spiffe://example.org/%2a", "spiffeid_percent_encoding"],
  [`spiffe://example.org/${"a".repeat(2048)}/*`, "spiffeid_too_long"],
  [`spiffe://${"a".repeat(256)}/*`, "spiffeid_trust_domain_too_long"],
];

describe("parsePattern", () => {
  for (const [pattern, input, want] of table) {
    test(`${pattern} ${want ? "matches" : "does not match"} ${input}`, () => {
      assert.equal(parsePattern(pattern).matches(id(input)), want);
    });
  }

  for (const [pattern, code] of badPatterns) {
    test(`rejects ${JSON.stringify(pattern.slice(0, 40))} with ${code}`, () => {
      assert.equal(codeOf(() => parsePattern(pattern)), code);
    });
  }

  test("toString gives the pattern back; messages name the pattern", () => {
    assert.equal(parsePattern("spiffe://example.org/a/*").toString(), "spiffe://example.org/a/*");
    assert.equal(parsePattern("spiffe://example.org/a").toString(), "spiffe://example.org/a");
    assert.throws(
      () => parsePattern("spiffe://example.org/**/a"),
      (e: unknown) =>
        e instanceof SpiffeIdError &&
        e.message ===
          'spiffeid: pattern "spiffe://example.org/**/a" has the segment "**" at 21: "**" must be the last segment',
    );
  });

  test("property: random patterns parse or throw SpiffeIdError", () => {
    const piece = fc.constantFrom(..."a.Z/*?#%:@ ".split(""), "**", "/*", "/**", "//");
    const text = fc.array(piece, { maxLength: 30 }).map((p) => `spiffe://example.org/${p.join("")}`);
    const probe = id("spiffe://example.org/a/b");
    fc.assert(
      fc.property(text, (p) => {
        try {
          parsePattern(p).matches(probe);
        } catch (e) {
          if (!(e instanceof SpiffeIdError)) throw e;
          assert.ok((SPIFFE_ID_ERROR_CODES as readonly string[]).includes(e.code));
        }
      }),
      { numRuns: fuzzRuns(300) },
    );
  });
});

describe("matcher constructors", () => {
  const a = id("spiffe://example.org/a");
  const b = id("spiffe://example.org/b");
  const c = id("spiffe://other.org/a");

  test("matchAny", () => {
    assert.ok(matchAny().matches(a) && matchAny().matches(c));
    assert.equal(matchAny().toString(), "*");
  });

  test("matchId", () => {
    assert.ok(matchId(a).matches(id("spiffe://example.org/a")));
    assert.ok(!matchId(a).matches(b));
    assert.equal(matchId(a).toString(), "spiffe://example.org/a");
  });

  test("matchOneOf", () => {
    const m = matchOneOf(a, c);
    assert.ok(m.matches(a) && m.matches(c) && !m.matches(b));
    assert.ok(!matchOneOf().matches(a));
    assert.equal(m.toString(), "[spiffe://example.org/a, spiffe://other.org/a]");
  });

  test("matchMemberOf equals the pattern td/**", () => {
    const td = TrustDomain.parse("example.org");
    const m = matchMemberOf(td);
    const p = parsePattern(m.toString());
    for (const x of [a, b, c, td.id(), id("spiffe://example.org/x/y/z")]) {
      assert.equal(m.matches(x), x.memberOf(td));
      assert.equal(p.matches(x), m.matches(x));
    }
    assert.equal(m.toString(), "spiffe://example.org/**");
  });
});
