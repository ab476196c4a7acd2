/**
 * Durations as operators write them in settings and flags: a whole number and a unit, several
 * parts allowed ("90s", "5m", "1h30m", "30d"). Units: ms, s, m, h, d. No sign, no fractions, no
 * bare numbers (is "60" seconds or minutes?), at most 100 years.
 */
import { TidegateError } from "../errors.ts";

export class DurationError extends TidegateError {}

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const WHOLE = /^(?:\d+(?:ms|s|m|h|d))+$/;
const PART = /(\d+)(ms|s|m|h|d)/g;
const MAX_MS = 100 * 365 * 86_400_000;

/** Milliseconds; throws DurationError (`duration_invalid`) naming the text and `what` it was for. */
export function parseDuration(text: string, what = "duration"): number {
  if (!WHOLE.test(text)) {
    throw new DurationError("duration_invalid", `${what}: ${JSON.stringify(text.slice(0, 64))} is not a duration (use e.g. 30s, 5m, 1h, 7d)`);
  }
  let ms = 0;
  for (const [, n, unit] of text.matchAll(PART)) ms += Number(n) * UNIT_MS[unit!]!;
  if (ms > MAX_MS) throw new DurationError("duration_invalid", `${what}: ${JSON.stringify(text)} is longer than 100 years`);
  return ms;
}

/** Whole seconds, refusing durations that are not a positive whole number of seconds. */
export function parseSeconds(text: string, what = "duration"): number {
  const ms = parseDuration(text, what);
  if (ms <= 0 || ms % 1000 !== 0) {
    throw new DurationError("duration_invalid", `${what}: ${JSON.stringify(text)} must be a positive whole number of seconds`);
  }
  return ms / 1000;
}

/** "1h30m", "45s": the shortest exact form, for messages and status screens. */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  let rest = Math.abs(ms);
  let out = ms < 0 ? "-" : "";
  for (const [unit, size] of [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], ["s", 1000], ["ms", 1]] as const) {
    if (rest >= size) {
      out += `${Math.floor(rest / size)}${unit}`;
      rest %= size;
    }
  }
  return out;
}
