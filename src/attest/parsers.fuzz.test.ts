// Property tests (../shared/STYLE.md point 6): the parsers of text a process can influence (its
// comm, its cgroup names) return or throw AttestError, never anything else; a comm never moves
// the start time.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { fuzzRuns } from "../../test/fuzz-runs.ts";
import { AttestError } from "./errors.ts";
import { parseCgroupPath } from "./cgroup-path.ts";
import { parseCgroupV2, parseStartTime, parseStatus } from "./proc-text.ts";
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
