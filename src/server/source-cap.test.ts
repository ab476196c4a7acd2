import { describe, expect, test } from "bun:test";
import { memoryLogger } from "../runtime/log.ts";
import { SourceCap, sourceKey } from "./source-cap.ts";

describe("sourceKey", () => {
  test.each([
    ["127.0.0.1", "127.0.0.1"],
    ["::ffff:127.0.0.1", "127.0.0.1"],
    ["::FFFF:10.1.2.3", "10.1.2.3"],
    ["::1", "::1"],
    ["2001:DB8::1", "2001:db8::1"],
    // Not IPv4-mapped: kept as they are.
    ["::ffff:0:127.0.0.1", "::ffff:0:127.0.0.1"],
    ["64:ff9b::127.0.0.1", "64:ff9b::127.0.0.1"],
    ["", "unknown"],
    [undefined, "unknown"],
  ])("%p counts as %p", (address, key) => {
    expect(sourceKey(address)).toBe(key);
  });
});

describe("SourceCap", () => {
  test("admits up to max per source, refuses the next, admits again after a release; sources are apart", () => {
    const cap = new SourceCap({ listener: "public", max: 2, logger: memoryLogger() });
    expect([cap.admit("a"), cap.admit("a"), cap.admit("a"), cap.admit("b")]).toEqual([true, true, false, true]);
    expect(cap.openFrom("a")).toBe(2);
    cap.release("a");
    expect(cap.admit("a")).toBe(true);
    expect(cap.refused).toBe(1);
  });

  test("a source whose connections all closed is forgotten", () => {
    const cap = new SourceCap({ listener: "api", max: 5, logger: memoryLogger() });
    for (const s of ["a", "b", "a"]) cap.admit(s);
    expect(cap.sources).toBe(2);
    for (const s of ["a", "b", "a"]) cap.release(s);
    expect(cap.sources).toBe(0);
  });

  test("refusals are logged at most once per interval, each line with the count since the previous one", () => {
    const logger = memoryLogger();
    let now = 0;
    const cap = new SourceCap({ listener: "public", max: 1, logger, logEveryMs: 60_000, now: () => now });
    cap.admit("a");
    for (let i = 0; i < 100; i++) cap.admit("a");
    now = 59_999; // b: one admitted, one refused
    cap.admit("b");
    cap.admit("b");
    now = 60_000;
    cap.admit("b");
    const lines = logger.lines.filter((l) => l.event === "connection_refused");
    expect(lines.map((l) => [l.listener, l.source, l.refused, l.max, l.reason])).toEqual([
      ["public", "a", 1, 1, "max_connections_per_source"],
      ["public", "b", 101, 1, "max_connections_per_source"],
    ]);
    expect(cap.refused).toBe(102);
  });

  test("a max below 1 is refused (the cap cannot be turned off)", () => {
    for (const max of [0, -1, 1.5, Number.NaN]) expect(() => new SourceCap({ listener: "x", max, logger: memoryLogger() })).toThrow(RangeError);
  });
});
