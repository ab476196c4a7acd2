import { assert, codeOf, describe, errorOf, test } from "../../test/shim.ts";
import { PolicyError } from "./errors.ts";
import { parsePort, parsePortRange, portInRange, portsOverlap } from "./ports.ts";

describe("parsePortRange", () => {
  const accepted: [unknown, number, number, string][] = [
    [443, 443, 443, "443"],
    [1, 1, 1, "1"],
    [65535, 65535, 65535, "65535"],
    [443n, 443, 443, "443"],
    ["443", 443, 443, "443"],
    ["8000-8080", 8000, 8080, "8000-8080"],
    ["53-53", 53, 53, "53"],
    ["1-65535", 1, 65535, "any"],
    ["any", 1, 65535, "any"],
    ["1-1", 1, 1, "1"],
    ["65535-65535", 65535, 65535, "65535"],
  ];
  for (const [x, lo, hi, text] of accepted) {
    test(`accepts ${typeof x === "string" ? JSON.stringify(x) : `${typeof x} ${String(x)}`} as ${text}`, () => {
      const r = parsePortRange(x);
      assert.deepEqual({ ...r }, { lo, hi, text });
      assert.ok(Object.isFrozen(r));
      assert.deepEqual(parsePortRange(r.text), r);
    });
  }

  const rejected: [unknown, string][] = [
    [0, "zero"],
    [-1, "negative"],
    [65536, "above 65535"],
    [443.5, "a float"],
    [Number.NaN, "NaN"],
    [Number.POSITIVE_INFINITY, "infinity"],
    [0n, "a zero bigint"],
    [65536n, "a large bigint"],
    [true, "a boolean"],
    [false, "a boolean"],
    [null, "null"],
    [undefined, "undefined"],
    [[443], "an array"],
    [{ lo: 1, hi: 2 }, "an object"],
    ["", "an empty string"],
    ["0", "zero as text"],
    ["0443", "a leading zero"],
    ["+443", "a sign"],
    ["-443", "a negative"],
    [" 443", "a leading space"],
    ["443 ", "a trailing space"],
    ["8000 - 8080", "spaces around the dash"],
    ["8080-8000", "an empty range"],
    ["8000-", "no upper bound"],
    ["-8000", "no lower bound"],
    ["1-2-3", "two dashes"],
    ["0-10", "zero as the lower bound"],
    ["65536", "above 65535 as text"],
    ["100000", "six digits"],
    ["443.0", "a decimal point"],
    ["0x1bb", "hex"],
    ["1e3", "exponent"],
    ["ANY", "uppercase any"],
    ["all", "another word"],
    ["４４３", "fullwidth digits"],
  ];
  for (const [x, why] of rejected) {
    test(`rejects ${why}`, () => {
      assert.equal(codeOf(() => parsePortRange(x)), "policy_bad_port");
    });
  }

  test("messages name the value", () => {
    assert.match(errorOf(() => parsePortRange("8080-8000"), PolicyError).message, /^policy: port "8080-8000": .*8080 is above 8000/);
    assert.match(errorOf(() => parsePortRange(true), PolicyError).message, /^policy: port true: /);
    assert.match(errorOf(() => parsePortRange({}), PolicyError).message, /^policy: port \(a value of type object\): want an integer/);
    assert.equal(errorOf(() => parsePortRange([80, "443", { a: 1 }, null, 5]), PolicyError).message, 'policy: port [80, "443", ..., null, ...]: a list: a rule takes one port, a range "N-M" or "any"; write a rule per port');
  });

  test("byte loop: a port takes only the decimal digits", () => {
    for (let b = 0; b < 256; b++) {
      const ch = String.fromCharCode(b);
      const ok = b >= 49 && b <= 57;
      assert.equal(codeOf(() => parsePortRange(`8${ch}`)), b >= 48 && b <= 57 ? null : "policy_bad_port", `after ${b}`);
      assert.equal(codeOf(() => parsePortRange(`${ch}8`)), ok ? null : "policy_bad_port", `before ${b}`);
    }
  });
});

describe("parsePort", () => {
  const accepted: [unknown, number][] = [
    [1, 1],
    [443, 443],
    [65535, 65535],
    ["8080", 8080],
    [8080n, 8080],
  ];
  for (const [x, want] of accepted) {
    test(`accepts ${typeof x} ${String(x)}`, () => assert.equal(parsePort(x), want));
  }
  const rejected: unknown[] = [0, 65536, 1.5, "0", "08", "1-2", "any", "", " 1", true, null, undefined, {}, []];
  for (const x of rejected) {
    test(`rejects ${typeof x} ${JSON.stringify(x) ?? String(x)}`, () => {
      assert.equal(codeOf(() => parsePort(x)), "policy_bad_port");
    });
  }
});

describe("portsOverlap and portInRange", () => {
  const table: [string, string, boolean][] = [
    ["443", "443", true],
    ["443", "444", false],
    ["80-90", "90-100", true],
    ["80-90", "91-100", false],
    ["80-90", "85", true],
    ["85", "80-90", true],
    ["80-90", "70-79", false],
    ["any", "65535", true],
    ["any", "1", true],
    ["1-100", "50-60", true],
  ];
  for (const [a, b, want] of table) {
    test(`${a} and ${b} ${want ? "overlap" : "do not overlap"}`, () => {
      assert.equal(portsOverlap(parsePortRange(a), parsePortRange(b)), want);
      assert.equal(portsOverlap(parsePortRange(b), parsePortRange(a)), want);
    });
  }
  test("portInRange includes both ends", () => {
    const r = parsePortRange("8000-8080");
    assert.deepEqual([7999, 8000, 8040, 8080, 8081].map((p) => portInRange(r, p)), [false, true, true, true, false]);
  });
});
