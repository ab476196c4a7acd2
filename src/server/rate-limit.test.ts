import { expect, test } from "bun:test";
import { RateLimiter } from "./rate-limit.ts";

test("a token bucket per key: burst of one second's worth, refilled over time, Retry-After in whole seconds", () => {
  let now = 0;
  const r = new RateLimiter(2, () => now);
  expect([r.take("a"), r.take("a"), r.take("a")]).toEqual([0, 0, 1]);
  expect(r.take("b")).toBe(0);
  now = 500;
  expect(r.take("a")).toBe(0);
  expect(r.take("a")).toBe(1);
  const slow = new RateLimiter(0.25, () => now);
  expect([slow.take("x"), slow.take("x")]).toEqual([0, 4]);
});

test("idle buckets are forgotten", () => {
  let now = 0;
  const r = new RateLimiter(10, () => now);
  for (let i = 0; i < 100; i++) r.take(`source-${i}`);
  expect(r.size).toBe(100);
  now = 10_000;
  r.take("new");
  expect(r.size).toBe(1);
});
