import { describe, expect, test } from "bun:test";
import { rssMedianGrowth, type Sample } from "./lib-soak.ts";

/** One sample a second for `seconds`: a sawtooth (climbs `swing` over `period` s, then drops) over a base that grows by `growth` over the run. */
function samples(seconds: number, o: { base: number; swing: number; period: number; phase: number; growth: number }): Sample[] {
  return Array.from({ length: seconds }, (_, i) => {
    const t = i + 1;
    const saw = (((t + o.phase) % o.period) / o.period) * o.swing;
    const rss = Math.round(o.base * (1 + (o.growth * t) / seconds) + saw);
    return { t, rss: { a: rss, b: rss }, fds: { a: 20, b: 20 } };
  });
}

describe("rssMedianGrowth", () => {
  // As wide as the soaks' (94-120 MiB): the windows span whole cycles, so the phase hardly matters.
  test("a flat sawtooth a quarter of the base wide passes at every phase and period seen (6-8 s), within a few percent", () => {
    const seen: number[] = [];
    for (const period of [6, 7, 8]) {
      for (let phase = 0; phase < period; phase++) seen.push(rssMedianGrowth(samples(60, { base: 95_000, swing: 25_000, period, phase, growth: 0 }), 60, "a"));
    }
    expect(Math.max(...seen)).toBeLessThanOrEqual(1.05);
    expect(Math.min(...seen)).toBeGreaterThanOrEqual(0.95);
  });

  test("a leak of 20 % over the run fails, whatever the phase", () => {
    for (let phase = 0; phase < 7; phase++) {
      expect(rssMedianGrowth(samples(60, { base: 95_000, swing: 25_000, period: 7, phase, growth: 0.2 }), 60, "a")).toBeGreaterThan(1.1);
    }
  });
});
