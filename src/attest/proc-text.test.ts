import { describe, expect, test } from "bun:test";
import { parseBootOffset, parseCgroupV2, parseStartTime, parseStatus, startTicks } from "./proc-text.ts";
import { AttestError } from "./errors.ts";

function code(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return e instanceof AttestError ? e.code : `not an AttestError: ${String(e)}`;
  }
  return "no error";
}

const tail = "S 1 2 3 0 -1 4194304 98 0 0 0 0 0 0 0 20 0 1 0 492819 3133440 380 18446744073709551615 0";

describe("parseStartTime (field 22 of /proc/PID/stat)", () => {
  const table: [string, string, number][] = [
    ["a plain comm", `28592 (cat) ${tail}`, 492819],
    ["a comm with spaces", `7 (my prog) ${tail}`, 492819],
    ["a comm with ) and fake fields", `7 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 99999) ${tail}`, 492819],
    ["a comm that is only )", `7 ()) ${tail}`, 492819],
    ["a comm with ( and )", `7 (a(b)c) ${tail}`, 492819],
    ["no trailing newline variations", `7 (z) ${tail}\n`, 492819],
  ];
  for (const [name, text, want] of table) test(name, () => expect(parseStartTime(text)).toBe(want));

  const bad: [string, string][] = [
    ["no parentheses", `7 cat ${tail}`],
    ["too few fields", "7 (cat) S 1 2 3"],
    ["a non-number start time", `7 (cat) S 1 2 3 0 -1 4194304 98 0 0 0 0 0 0 0 20 0 1 0 12x 3133440`],
    ["a negative start time", `7 (cat) S 1 2 3 0 -1 4194304 98 0 0 0 0 0 0 0 20 0 1 0 -5 3133440`],
    ["an out of range start time", `7 (cat) S 1 2 3 0 -1 4194304 98 0 0 0 0 0 0 0 20 0 1 0 99999999999999999999 3133440`],
    ["empty", ""],
  ];
  for (const [name, text] of bad) test(`rejects ${name}`, () => expect(code(() => parseStartTime(text))).toBe("attest_bad_proc"));
});

describe("parseStatus", () => {
  const status = "Name:\tsleep\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t9\nUid:\t1000\t0\t0\t0\nGid:\t100\t65534\t100\t100\nFDSize:\t64\nGroups:\t4 24 27 \nNStgid:\t9\n";
  test("reads real, effective, saved and fs ids and the groups", () => {
    expect(parseStatus(status)).toEqual({ uids: [1000, 0, 0, 0], gids: [100, 65534, 100, 100], groups: [4, 24, 27] });
  });
  test("an empty Groups line is no groups", () => {
    expect(parseStatus(status.replace("Groups:\t4 24 27 ", "Groups:\t")).groups).toEqual([]);
  });
  const bad: [string, string][] = [
    ["no Uid line", status.replace(/Uid:[^\n]*\n/, "")],
    ["no Gid line", status.replace(/Gid:[^\n]*\n/, "")],
    ["no Groups line", status.replace(/Groups:[^\n]*\n/, "")],
    ["three Uid fields", status.replace("Uid:\t1000\t0\t0\t0", "Uid:\t1000\t0\t0")],
    ["a negative uid", status.replace("Uid:\t1000", "Uid:\t-1")],
    ["a uid over 32 bits", status.replace("Uid:\t1000", "Uid:\t4294967296")],
    ["a non-number group", status.replace("Groups:\t4", "Groups:\twheel")],
  ];
  for (const [name, text] of bad) test(`rejects ${name}`, () => expect(code(() => parseStatus(text))).toBe("attest_bad_proc"));
});

describe("parseCgroupV2", () => {
  test("the 0:: line of a hybrid host", () => {
    expect(parseCgroupV2("9:name=systemd:/user.slice\n4:memory:/x\n0::/user.slice/user-1000.slice/session-2.scope\n")).toBe("/user.slice/user-1000.slice/session-2.scope");
  });
  test("the root", () => expect(parseCgroupV2("0::/\n")).toBe("/"));
  test("a v1-only host has none", () => expect(parseCgroupV2("4:memory:/x\n1:cpu:/\n")).toBeNull());
  test("rejects a relative path", () => expect(code(() => parseCgroupV2("0::x/y\n"))).toBe("attest_bad_proc"));
});

describe("startTicks and parseBootOffset (the kernel's start time as /proc shows it)", () => {
  test("nanoseconds after boot to clock ticks of 10 ms, rounded down as the kernel does", () => {
    expect(startTicks(1_234_567_890n)).toBe(123);
    expect(startTicks(9_999_999n)).toBe(0);
    expect(startTicks(10_000_000n)).toBe(1);
  });

  test("a time namespace's boot offset is added; 0 or a negative sum is not a start time", () => {
    expect(startTicks(1_000_000_000n, 2_500_000_000n)).toBe(350);
    expect(startTicks(2_000_000_000n, -1_000_000_000n)).toBe(100);
    expect(startTicks(0n)).toBeNull();
    expect(startTicks(1_000_000_000n, -2_000_000_000n)).toBeNull();
  });

  test("timens_offsets: the boottime line, by name or clock number; none is 0", () => {
    expect(parseBootOffset("monotonic 0 0\nboottime 0 0\n")).toBe(0n);
    expect(parseBootOffset("monotonic 100 0\nboottime 2 500000000\n")).toBe(2_500_000_000n);
    expect(parseBootOffset("boottime -3 250000000\n")).toBe(-2_750_000_000n);
    expect(parseBootOffset("7 1 0\n")).toBe(1_000_000_000n);
    expect(parseBootOffset("monotonic 5 0\n")).toBe(0n);
    expect(parseBootOffset("")).toBe(0n);
  });

  for (const [name, text] of [
    ["a missing field", "boottime 1\n"],
    ["a fraction past 9 digits", "boottime 1 1000000000\n"],
    ["a word for seconds", "boottime one 0\n"],
  ] as const) {
    test(`timens_offsets: rejects ${name}`, () => expect(code(() => parseBootOffset(text))).toBe("attest_bad_proc"));
  }
});
