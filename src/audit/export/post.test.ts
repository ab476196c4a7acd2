import { describe, expect, test } from "bun:test";
import { RETRY_AFTER_MAX_MS, parseRetryAfter } from "./post.ts";

describe("parseRetryAfter (RFC 9110 10.2.3: delay-seconds or HTTP-date)", () => {
  const now = Date.parse("2026-11-26T17:00:00Z");
  const cases: [string | null, number | null][] = [
    [null, null],
    ["0", 0],
    ["2", 2000],
    [" 3 ", 3000],
    ["Thu, 26 Nov 2026 17:00:05 GMT", 5000],
    ["Thu, 26 Nov 2026 16:59:00 GMT", 0],
    ["86400", RETRY_AFTER_MAX_MS],
    ["-1", null],
    ["1.5", null],
    ["soon", null],
    ["", null],
    ["12345678901234567890", RETRY_AFTER_MAX_MS],
  ];
  for (const [value, want] of cases) {
    test(`${JSON.stringify(value)} gives ${want}`, () => expect(parseRetryAfter(value, now)).toBe(want));
  }
});
