/**
 * Property tests of the policy's value parsers: on any input each returns a value or throws a
 * PolicyError (never anything else, never hangs), and what it returns is canonical (parsing its
 * text gives it back).
 */
import fc from "fast-check";
import { fuzzRuns } from "../../test/fuzz-runs.ts";
import { assert, describe, test } from "../../test/shim.ts";
import { parseCidr, parseIp } from "./address.ts";
import { PolicyError } from "./errors.ts";
import { normalizeServerName, parseHostPattern } from "./host-name.ts";
import { normalizeRequestPath, parseMethod, parsePathPattern } from "./http-match.ts";
import { parsePortRange } from "./ports.ts";

const RUNS = fuzzRuns(400);

/** Characters the parsers give meaning to, so random strings get past the first checks. */
const SPECIAL = [..."0123456789abcdefABCDEFxyzXYZ:./%[]*-_~?#\\@ \t\u0000\u007f\u00e9\u212a\ud800"];

function strings(maxLength: number): fc.Arbitrary<string> {
  return fc.oneof(
    fc.string({ unit: fc.constantFrom(...SPECIAL), maxLength }),
    fc.string({ unit: "binary", maxLength }),
    fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 8 }),
    fc.string({ unit: fc.constantFrom(...SPECIAL), minLength: maxLength, maxLength: maxLength * 5 }),
  );
}

/** Runs `parse`; a PolicyError with `code` gives null, anything else thrown fails the property. */
function attempt<T>(code: string, parse: () => T): T | null {
  try {
    return parse();
  } catch (e) {
    if (e instanceof PolicyError && e.code === code) return null;
    throw e;
  }
}

describe("every parser returns or throws PolicyError", () => {
  test("parseIp", () => {
    fc.assert(
      fc.property(fc.oneof(strings(50), fc.ipV4(), fc.ipV4Extended(), fc.ipV6()), (s) => {
        const a = attempt("policy_bad_address", () => parseIp(s));
        if (a !== null) assert.deepEqual(parseIp(a.text), a);
      }),
      { numRuns: RUNS },
    );
  });

  test("parseCidr", () => {
    const cidrText = fc.tuple(strings(45), fc.constantFrom("", "/"), strings(4)).map(([a, s, n]) => a + s + n);
    const withPrefix = fc.tuple(fc.oneof(fc.ipV4(), fc.ipV6()), fc.nat(130)).map(([a, n]) => `${a}/${n}`);
    fc.assert(
      fc.property(fc.oneof(strings(60), cidrText, withPrefix, fc.ipV4(), fc.ipV6()), (s) => {
        const c = attempt("policy_bad_cidr", () => parseCidr(s));
        if (c !== null) assert.deepEqual(parseCidr(c.text), c);
      }),
      { numRuns: RUNS },
    );
  });

  test("parseHostPattern", () => {
    fc.assert(
      fc.property(fc.oneof(strings(300), fc.domain(), fc.domain().map((d) => `*.${d}`)), (s) => {
        const p = attempt("policy_bad_host", () => parseHostPattern(s));
        if (p !== null) assert.deepEqual(parseHostPattern(p.text), p);
      }),
      { numRuns: RUNS },
    );
  });

  test("normalizeServerName", () => {
    fc.assert(
      fc.property(fc.oneof(strings(300), fc.domain(), fc.ipV4(), fc.ipV6()), (s) => {
        const n = attempt("policy_bad_host", () => normalizeServerName(s));
        if (n !== null) assert.equal(normalizeServerName(n), n);
      }),
      { numRuns: RUNS },
    );
  });

  test("parsePortRange on strings and on any value", () => {
    fc.assert(
      fc.property(fc.oneof(strings(12), fc.anything(), fc.integer(), fc.double(), fc.bigInt()), (x) => {
        const r = attempt("policy_bad_port", () => parsePortRange(x));
        if (r !== null) assert.deepEqual(parsePortRange(r.text), r);
      }),
      { numRuns: RUNS },
    );
  });

  test("parseMethod", () => {
    fc.assert(
      fc.property(strings(40), (s) => {
        const m = attempt("policy_bad_method", () => parseMethod(s));
        if (m !== null) assert.equal(m, s);
      }),
      { numRuns: RUNS },
    );
  });

  test("parsePathPattern", () => {
    fc.assert(
      fc.property(fc.oneof(strings(2100), strings(50).map((s) => `/${s}`)), (s) => {
        const p = attempt("policy_bad_path", () => parsePathPattern(s));
        if (p !== null) assert.equal(p.text, s);
      }),
      { numRuns: RUNS },
    );
  });

  test("normalizeRequestPath", () => {
    fc.assert(
      fc.property(fc.oneof(strings(9000), strings(50).map((s) => `/${s}`), fc.webPath()), (s) => {
        const p = attempt("policy_bad_path", () => normalizeRequestPath(s));
        if (p !== null) assert.equal(normalizeRequestPath(p), p, "idempotent");
      }),
      { numRuns: RUNS },
    );
  });
});

/** Writes an IPv6 address in one of the many spellings RFC 4291 section 2.2 allows. */
function spell(groups: number[], pad: boolean, upper: boolean, gapAt: number, gapLen: number, v4Tail: boolean): string {
  const hex = (g: number) => {
    const h = g.toString(16).padStart(pad ? 4 : 1, "0");
    return upper ? h.toUpperCase() : h;
  };
  const tail = v4Tail ? 6 : 8;
  const parts = groups.slice(0, tail).map(hex);
  if (v4Tail) {
    const [a = 0, b = 0] = groups.slice(6);
    parts.push(`${a >> 8}.${a & 255}.${b >> 8}.${b & 255}`);
  }
  // Only a run of zero groups (not reaching into the IPv4 tail) may become "::".
  const run = groups.slice(gapAt, gapAt + gapLen);
  if (gapLen === 0 || gapAt + gapLen > tail || run.some((g) => g !== 0)) return parts.join(":");
  const head = parts.slice(0, gapAt).join(":");
  const rest = parts.slice(gapAt + gapLen).join(":");
  return `${head}::${rest}`;
}

describe("parseIp(format(x)) round trips", () => {
  test("IPv4 dotted quads", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (v) => {
        const text = `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
        const a = parseIp(text);
        assert.deepEqual({ ...a }, { family: 4, value: BigInt(v), text });
      }),
      { numRuns: RUNS },
    );
  });

  test("IPv6 in any spelling gives the same value and the one canonical text", () => {
    // Groups drawn mostly from 0 and small values, so zero runs (and "::") are common.
    const group = fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 15 }));
    const mapped = fc.tuple(group, group).map(([a, b]) => [0, 0, 0, 0, 0, 0xffff, a, b]);
    fc.assert(
      fc.property(
        fc.oneof(fc.array(group, { minLength: 8, maxLength: 8 }), mapped),
        fc.boolean(),
        fc.boolean(),
        fc.integer({ min: 0, max: 7 }),
        fc.integer({ min: 0, max: 8 }),
        fc.boolean(),
        (groups, pad, upper, gapAt, gapLen, v4Tail) => {
          const value = groups.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
          const isMapped = value >> 32n === 0xffffn;
          const canonical = parseIp(spell(groups, false, false, 0, 0, false));
          const a = parseIp(spell(groups, pad, upper, gapAt, gapLen, v4Tail));
          assert.deepEqual(a, canonical);
          assert.equal(a.family, isMapped ? 4 : 6);
          assert.equal(a.value, isMapped ? value & 0xffffffffn : value);
          assert.deepEqual(parseIp(a.text), a);
          if (!isMapped) assert.equal(a.text, a.text.toLowerCase());
        },
      ),
      { numRuns: fuzzRuns(800) },
    );
  });
});
