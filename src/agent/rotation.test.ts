import { describe, expect, test } from "bun:test";
import { rotationTime } from "./rotation.ts";

const H = 3600_000;

describe("rotationTime: half life +-10 % of the half (SPIRE's rule)", () => {
  test("table: random 0 is the latest, 0.5 the half life, ~1 the earliest", () => {
    const nb = 1_000_000;
    const na = nb + H; // half 30 min, delta 3 min
    expect(rotationTime(nb, na, () => 0)).toBe(nb + 33 * 60_000);
    expect(rotationTime(nb, na, () => 0.5)).toBe(nb + 30 * 60_000);
    expect(rotationTime(nb, na, () => 0.999_999_999)).toBe(nb + 27 * 60_000);
  });

  test("every draw lands in (nb + 0.45 L, nb + 0.55 L]", () => {
    for (let i = 0; i < 10_000; i++) {
      const nb = Math.floor(Math.random() * 1e12);
      const lifetime = 1000 + Math.floor(Math.random() * 10 * H);
      const at = rotationTime(nb, nb + lifetime, Math.random);
      expect(at).toBeGreaterThanOrEqual(Math.floor(nb + 0.45 * lifetime));
      expect(at).toBeLessThanOrEqual(Math.ceil(nb + 0.55 * lifetime));
    }
  });

  test("a zero-length or inverted validity is due at its end", () => {
    expect(rotationTime(5000, 5000, () => 0.3)).toBe(5000);
    expect(rotationTime(9000, 5000, () => 0.3)).toBe(5000);
  });
});
