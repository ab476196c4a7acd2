import { describe, expect, test } from "bun:test";
import { formatDuration, parseDuration, parseSeconds } from "./duration.ts";

describe("parseDuration", () => {
  test.each([
    ["250ms", 250], ["10s", 10_000], ["5m", 300_000], ["1h", 3_600_000], ["30d", 2_592_000_000], ["1h30m", 5_400_000], ["0s", 0],
  ] as const)("%s is %d ms", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });
  test.each(["", "10", "1.5h", "-5s", "5 m", "5M", "1w", "h", "1h ", "101000d"])("rejects %p naming it", (text) => {
    expect(() => parseDuration(text, "ttl")).toThrow(expect.objectContaining({ code: "duration_invalid" }));
    try {
      parseDuration(text, "ttl");
    } catch (e) {
      expect((e as Error).message).toStartWith("ttl: ");
    }
  });
});

test("parseSeconds refuses zero and sub-second durations", () => {
  expect(parseSeconds("90s")).toBe(90);
  expect(() => parseSeconds("0s")).toThrow(expect.objectContaining({ code: "duration_invalid" }));
  expect(() => parseSeconds("1500ms")).toThrow(expect.objectContaining({ code: "duration_invalid" }));
});

test("formatDuration gives the shortest exact form", () => {
  expect(formatDuration(5_400_000)).toBe("1h30m");
  expect(formatDuration(45_000)).toBe("45s");
  expect(formatDuration(86_400_000 + 1)).toBe("1d1ms");
  expect(formatDuration(0)).toBe("0s");
});
