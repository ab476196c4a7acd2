// Property tests (../shared/STYLE.md point 6): the parsers of text a process can influence (its
// comm, its cgroup names) return or throw AttestError, never anything else; a comm never moves
// the start time.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { fuzzRuns } from "../../test/fuzz-runs.ts";
import { AttestError } from "./errors.ts";
import { parseCgroupPath } from "./cgroup-path.ts";
import { parseCgroupV2, parseStartTime, parseStatus, startTimeFromBytes } from "./proc-text.ts";
import { createAttestation } from "./system.ts";

function onlyOurs(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    if (!(e instanceof AttestError)) throw e;
  }
}

describe("parsers under arbitrary input", () => {
  test("parseStartTime: any comm (up to 64 chars, with spaces and parentheses) keeps field 22", () => {
    const comm = fc.string({ unit: fc.constantFrom("a", " ", "(", ")", "1", "S", "\t"), maxLength: 64 });
    fc.assert(
      fc.property(comm, fc.integer({ min: 0, max: 2 ** 40 }), (c, st) => {
        const text = `42 (${c}) S 1 1 1 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 ${st} 1000 100\n`;
        expect(parseStartTime(text)).toBe(st);
      }),
      { numRuns: fuzzRuns(100) },
    );
  });
  test("parseStartTime's scan agrees with the split it replaced (fields[19] of the text after ')', trimmed, split on runs of spaces)", () => {
    const reference = (stat: string): string => {
      const close = stat.lastIndexOf(")");
      if (close < 0 || stat.indexOf("(") < 0) return "error";
      const v = stat.slice(close + 1).trim().split(/ +/)[19];
      return v === undefined || !/^[0-9]+$/.test(v) || !Number.isSafeInteger(Number(v)) ? "error" : String(Number(v));
    };
    const ours = (stat: string): string => {
      try {
        return String(parseStartTime(stat));
      } catch (e) {
        if (e instanceof AttestError) return "error";
        throw e;
      }
    };
    // mostly spaces, digits and parentheses, so that field 22 exists, is cut short or is not a number
    const text = fc.string({ unit: fc.constantFrom(" ", " ", " ", "1", "7", "(", ")", "x", "\t", "\n"), maxLength: 80 });
    fc.assert(
      fc.property(text, fc.integer({ min: 0, max: 25 }), (t, n) => {
        const line = `1 (c)${" 5".repeat(n)}${t}`;
        expect(ours(line)).toBe(reference(line));
        expect(ours(t)).toBe(reference(t));
      }),
      { numRuns: fuzzRuns(3000) },
    );
  });
  test("startTimeFromBytes gives parseStartTime's answer or -1 (then the text is parsed), never another number", () => {
    const enc = new TextEncoder();
    const check = (t: string): boolean => {
      const b = new Uint8Array(4096);
      const bytes = enc.encode(t);
      b.set(bytes);
      const fast = startTimeFromBytes(b, bytes.length);
      if (fast === -1) return false;
      expect(fast).toBe(parseStartTime(t));
      return true;
    };
    // the kernel's shape, any comm: always taken by the fast parser
    const comm = fc.string({ unit: fc.constantFrom("a", " ", "(", ")", "1", "S", "\t", "é"), maxLength: 64 });
    fc.assert(
      fc.property(comm, fc.integer({ min: 0, max: 2 ** 49 }), (c, st) => {
        expect(check(`42 (${c}) S 1 1 1 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 ${st} 1000 100\n`)).toBe(true);
      }),
      { numRuns: fuzzRuns(300) },
    );
    // near misses: when it answers, it is parseStartTime's answer
    const text = fc.string({ unit: fc.constantFrom(" ", " ", " ", "1", "7", "(", ")", "x", "\t", "\n", "\u0000", "é"), maxLength: 80 });
    let taken = 0;
    fc.assert(
      fc.property(text, fc.integer({ min: 0, max: 25 }), fc.integer({ min: 0, max: 20 }), (t, n, digits) => {
        if (check(`1 (c)${" 5".repeat(n)} ${"9".repeat(digits)}${t}`)) taken++;
        check(t);
      }),
      { numRuns: fuzzRuns(3000) },
    );
    expect(taken).toBeGreaterThan(0);
  });
  test("parseStartTime, parseStatus, parseCgroupV2, parseCgroupPath: return or throw AttestError", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (s) => {
        onlyOurs(() => parseStartTime(s));
        onlyOurs(() => parseStatus(s));
        onlyOurs(() => parseCgroupV2(s));
        onlyOurs(() => parseCgroupPath(s));
      }),
      { numRuns: fuzzRuns(2000) },
    );
  });
  test("parseCgroupPath over segment-shaped input", () => {
    const seg = fc.oneof(fc.constantFrom("kubepods", "kubepods.slice", "docker", "pod", "a"), fc.stringMatching(/^(docker-|crio-|libpod-conmon-|pod)?[0-9a-f_-]{0,70}(\.scope|\.slice)?$/));
    fc.assert(fc.property(fc.array(seg, { maxLength: 8 }), (segs) => onlyOurs(() => parseCgroupPath(`/${segs.join("/")}`))), { numRuns: fuzzRuns(2000) });
  });
});

test("a host without cgroup v2: attest_no_cgroup2", () => {
  let code = "no error";
  try {
    createAttestation({ cgroupName: "tidegate", cgroup2: null });
  } catch (e) {
    code = e instanceof AttestError ? e.code : String(e);
  }
  expect(code).toBe("attest_no_cgroup2");
});
