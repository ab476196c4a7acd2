import { describe, expect, test } from "bun:test";
import { constantTimeEqual } from "./constant-time.ts";

describe("constantTimeEqual", () => {
  const cases: [string | Uint8Array, string | Uint8Array, boolean][] = [
    ["", "", true],
    ["abc", "abc", true],
    ["abc", "abd", false],
    ["abc", "ab", false],
    ["ab", "abc", false],
    ["", "a", false],
    ["\u0000", "", false],
    ["é", new Uint8Array([0xc3, 0xa9]), true],
    [new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 3]), true],
    [new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 4]), false],
  ];
  for (const [a, b, want] of cases) {
    test(`${JSON.stringify(typeof a === "string" ? a : [...a])} vs ${JSON.stringify(typeof b === "string" ? b : [...b])}: ${want}`, () => {
      expect(constantTimeEqual(a, b)).toBe(want);
      expect(constantTimeEqual(b, a)).toBe(want);
    });
  }

  test("every single-byte difference at every position is found", () => {
    const base = new Uint8Array(16).fill(0x41);
    for (let i = 0; i < base.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const other = base.slice();
        other[i]! ^= 1 << bit;
        expect(constantTimeEqual(base, other)).toBe(false);
      }
    }
  });
});
