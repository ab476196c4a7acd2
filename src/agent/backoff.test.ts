import { describe, expect, test } from "bun:test";
import { Backoff, MIN_WAIT_MS } from "./backoff.ts";

describe("Backoff: capped exponential with full jitter", () => {
  test("the ceiling doubles from 1 s and stops at maxMs", () => {
    const b = new Backoff({ maxMs: 60_000, random: () => 0.999_999 });
    const waits = Array.from({ length: 10 }, () => b.next());
    expect(waits).toEqual([999, 1999, 3999, 7999, 15999, 31999, 59999, 59999, 59999, 59999]);
    expect(b.count).toBe(10);
  });

  test("the wait is uniform below the ceiling (random scales it), never under MIN_WAIT_MS", () => {
    const half = new Backoff({ maxMs: 10_000, random: () => 0.5 });
    expect([half.next(), half.next(), half.next()]).toEqual([500, 1000, 2000]);
    const zero = new Backoff({ maxMs: 10_000, random: () => 0 });
    expect(zero.next()).toBe(MIN_WAIT_MS);
  });

  test("reset starts over; a huge failure count does not overflow", () => {
    const b = new Backoff({ maxMs: 5000, baseMs: 100, random: () => 0.999 });
    for (let i = 0; i < 2000; i++) b.next();
    expect(b.next()).toBe(4995);
    b.reset();
    expect(b.next()).toBe(99);
  });
});
