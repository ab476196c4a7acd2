/**
 * Property tests of SPIFFE IDs, trust domains and patterns (../shared/STYLE.md point 6), beside
 * the round trips in id.test.ts: the four ways in (`SpiffeId.parse`, `fromPath`, `fromSegments`,
 * `TrustDomain.parse`) agree on every input; every rejection is a SpiffeIdError whose message is
 * one bounded line of printable ASCII whatever the input (it goes to logs); the byte limits of
 * SPIFFE-ID sections 2.1 and 2.5 hold exactly at their edges; and a pattern matches exactly the IDs
 * a simple model of its wildcards does.
 */
import fc from "fast-check";
import { fuzzRuns } from "../../test/fuzz-runs.ts";
import { assert, describe, test } from "../../test/shim.ts";
import { MAX_ID_BYTES, MAX_TRUST_DOMAIN_BYTES } from "./charset.ts";
import { SPIFFE_ID_ERROR_CODES, SpiffeIdError } from "./errors.ts";
import { SpiffeId } from "./id.ts";
import { parsePattern } from "./match.ts";
import { TrustDomain } from "./trust-domain.ts";

const RUNS = fuzzRuns(300);
const SCHEME = "spiffe://";

/** `fn`'s value, or the code of the SpiffeIdError it throws (checked); anything else fails. */
function attempt<T>(fn: () => T): T | { code: string } {
  try {
    return fn();
  } catch (e) {
    if (!(e instanceof SpiffeIdError)) throw e;
    assert.ok((SPIFFE_ID_ERROR_CODES as readonly string[]).includes(e.code), e.code);
    assert.ok(e.message.startsWith("spiffeid: "), e.message);
    assert.match(e.message, /^[\x20-\x7e]*$/, "one line of printable ASCII");
    // quote() keeps 100 UTF-16 units of the input, each printed as at most 6 characters (\uXXXX).
    assert.ok(e.message.length <= 800, `a message of ${e.message.length} characters`);
    return { code: e.code };
  }
}

const failed = (r: unknown): r is { code: string } => typeof r === "object" && r !== null && "code" in r && !(r instanceof SpiffeId);

/** Characters the parser gives meaning to, and a few it must refuse. */
const PIECES = [..."az09AZ._-/:@?#%*", " ", "\u0000", "\u007f", "\u00e9", "\u212a", "\ud800", "\ud83d\ude00", "..", "//", "/.", "/..", SCHEME, ":/"];
const text = (maxLength: number) =>
  fc.oneof(
    fc.string({ unit: fc.constantFrom(...PIECES), maxLength }),
    fc.string({ unit: "binary", maxLength }),
    fc.string({ unit: fc.constantFrom(...PIECES), minLength: 700, maxLength: 1200 }),
  );
const tdName = fc.string({ unit: fc.constantFrom(..."abcz0189._-"), minLength: 1, maxLength: 20 });
const segment = fc.string({ unit: fc.constantFrom(..."aAzZ09._-"), minLength: 1, maxLength: 8 }).filter((s) => s !== "." && s !== "..");

describe("the ways into a SPIFFE ID agree", () => {
  test("parse(scheme + td + path) and fromPath(TrustDomain.parse(td), path): both succeed with the same ID, or fail with one code", () => {
    fc.assert(
      fc.property(tdName, fc.oneof(text(40).map((s) => `/${s}`), text(40), fc.array(segment, { maxLength: 5 }).map((s) => s.map((x) => `/${x}`).join(""))), (td, path) => {
        fc.pre(path === "" || path.startsWith("/"));
        const parsed = attempt(() => SpiffeId.parse(`${SCHEME}${td}${path}`));
        const built = attempt(() => SpiffeId.fromPath(TrustDomain.parse(td), path));
        if (failed(parsed) || failed(built)) {
          assert.deepEqual(parsed, built);
          return;
        }
        assert.ok(parsed.equals(built));
        assert.equal(parsed.toString(), `${SCHEME}${td}${path}`);
        assert.deepEqual([parsed.trustDomain.name, parsed.path], [td, path]);
      }),
      { numRuns: RUNS },
    );
  });

  test("fromSegments(td, ...segs) is parse of the joined path; a segment with '/' in it is refused", () => {
    fc.assert(
      fc.property(tdName, fc.array(fc.oneof(segment, text(6)), { maxLength: 5 }), (td, segs) => {
        const built = attempt(() => SpiffeId.fromSegments(TrustDomain.parse(td), ...segs));
        const parsed = attempt(() => SpiffeId.parse(`${SCHEME}${td}${segs.map((s) => `/${s}`).join("")}`));
        if (segs.some((s) => s.includes("/"))) assert.ok(failed(built));
        if (!failed(built)) assert.ok(!failed(parsed) && parsed.equals(built));
        if (!failed(parsed) && !segs.some((s) => s.includes("/"))) assert.ok(!failed(built) && built.equals(parsed));
      }),
      { numRuns: RUNS },
    );
  });

  test("TrustDomain.parse(x) succeeds exactly when x is the trust domain of an ID without a path", () => {
    fc.assert(
      fc.property(fc.oneof(text(30), tdName, tdName.map((t) => SCHEME + t)), (x) => {
        const td = attempt(() => TrustDomain.parse(x));
        const bare = x.startsWith(SCHEME) ? x.slice(SCHEME.length) : x;
        const asId = x.includes(":/") ? attempt(() => SpiffeId.parse(x)) : attempt(() => SpiffeId.parse(SCHEME + x));
        assert.equal(failed(td), failed(asId) || (!failed(asId) && asId.path !== ""), `${JSON.stringify(x)}`);
        if (failed(td)) return;
        assert.equal(td.name, bare);
        assert.ok(TrustDomain.parse(td.idString()).equals(td) && TrustDomain.parse(td.name).equals(td));
        assert.equal(td.id().toString(), td.idString());
      }),
      { numRuns: RUNS },
    );
  });

  test("any text: an ID that prints back to the text, or a bounded one-line SpiffeIdError", () => {
    fc.assert(
      fc.property(fc.oneof(text(60), text(60).map((s) => SCHEME + s)), (s) => {
        const id = attempt(() => SpiffeId.parse(s));
        if (failed(id)) return;
        assert.equal(id.toString(), s);
        assert.ok(Object.isFrozen(id) && Object.isFrozen(id.trustDomain));
      }),
      { numRuns: RUNS },
    );
  });
});

describe("byte limits at their edges (SPIFFE-ID 2.1, 2.5)", () => {
  test("an ID of N bytes is accepted exactly when N <= 2048 and its trust domain <= 255", () => {
    const shape = fc.record({
      tdLength: fc.oneof(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 250, max: 260 })),
      total: fc.integer({ min: MAX_ID_BYTES - 12, max: MAX_ID_BYTES + 12 }),
      segLength: fc.integer({ min: 1, max: 300 }),
    });
    fc.assert(
      fc.property(shape, ({ tdLength, total, segLength }) => {
        const td = "a".repeat(tdLength);
        // A path of exactly `pathLength` bytes: "/" every segLength + 1 characters, never last.
        const chars = Array.from({ length: total - SCHEME.length - tdLength }, () => "x");
        for (let i = 0; i < chars.length - 1; i += segLength + 1) chars[i] = "/";
        const path = chars.join("");
        const s = SCHEME + td + path;
        assert.equal(s.length, total);
        const got = attempt(() => SpiffeId.parse(s));
        const want = total > MAX_ID_BYTES ? "spiffeid_too_long" : tdLength > MAX_TRUST_DOMAIN_BYTES ? "spiffeid_trust_domain_too_long" : null;
        assert.equal(failed(got) ? got.code : null, want);
        const fromPath = tdLength > MAX_TRUST_DOMAIN_BYTES ? null : attempt(() => SpiffeId.fromPath(TrustDomain.parse(td), path));
        if (fromPath !== null) assert.equal(failed(fromPath) ? fromPath.code : null, want);
      }),
      { numRuns: RUNS },
    );
  });

  test("multi-byte characters count in UTF-8: an over-long ID of them is spiffeid_too_long, never accepted", () => {
    fc.assert(
      fc.property(fc.integer({ min: 600, max: 1100 }), fc.constantFrom("\u00e9", "\u212a", "\ud83d\ude00", "\ud800"), (n, ch) => {
        const got = attempt(() => SpiffeId.parse(`${SCHEME}example.org/${ch.repeat(n)}`));
        assert.ok(failed(got));
        const bytes = new TextEncoder().encode(`${SCHEME}example.org/${ch.repeat(n)}`).length;
        assert.equal(got.code, bytes > MAX_ID_BYTES ? "spiffeid_too_long" : "spiffeid_bad_path_segment_char");
      }),
      { numRuns: fuzzRuns(100) },
    );
  });
});

/** The model: `*` is one whole segment, a last `**` any rest (none included); otherwise equal. */
function modelMatches(pattern: string, id: string): boolean {
  const [ptd, ...pseg] = pattern.slice(SCHEME.length).split("/");
  const [itd, ...iseg] = id.slice(SCHEME.length).split("/");
  if (ptd !== itd) return false;
  const rest = pseg.at(-1) === "**";
  const fixed = rest ? pseg.slice(0, -1) : pseg;
  if (rest ? iseg.length < fixed.length : iseg.length !== fixed.length) return false;
  return fixed.every((p, i) => p === "*" || p === iseg[i]);
}

describe("patterns", () => {
  const td = fc.constantFrom("a.org", "b.org");
  const patternArb = fc
    .tuple(td, fc.array(fc.constantFrom("x", "y", "*"), { maxLength: 4 }), fc.boolean())
    .map(([t, segs, rest]) => `${SCHEME}${t}${[...segs, ...(rest ? ["**"] : [])].map((s) => `/${s}`).join("")}`);
  const idArb = fc.tuple(td, fc.array(fc.constantFrom("x", "y", "z"), { maxLength: 5 })).map(([t, segs]) => `${SCHEME}${t}${segs.map((s) => `/${s}`).join("")}`);

  test("a pattern matches exactly the IDs the model says, and prints as written", () => {
    fc.assert(
      fc.property(patternArb, fc.array(idArb, { minLength: 1, maxLength: 8 }), (p, ids) => {
        const m = parsePattern(p);
        assert.equal(m.toString(), p);
        for (const id of ids) assert.equal(m.matches(SpiffeId.parse(id)), modelMatches(p, id), `${p} vs ${id}`);
      }),
      { numRuns: RUNS },
    );
  });

  test("any text: a Matcher that prints as the text, or SpiffeIdError; without '*' a pattern is exactly an ID", () => {
    fc.assert(
      fc.property(fc.oneof(text(50).map((s) => `${SCHEME}a.org/${s}`), text(50)), idArb, (s, probe) => {
        const m = attempt(() => parsePattern(s));
        if (!failed(m)) {
          assert.equal(m.toString(), s);
          m.matches(SpiffeId.parse(probe));
        }
        if (s.includes("*")) return;
        const id = attempt(() => SpiffeId.parse(s));
        assert.equal(failed(m), failed(id));
        if (!failed(m) && !failed(id)) {
          assert.ok(m.matches(id));
          assert.equal(m.matches(SpiffeId.parse(probe)), probe === s);
        }
      }),
      { numRuns: RUNS },
    );
  });
});
