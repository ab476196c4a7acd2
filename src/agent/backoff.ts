/**
 * Capped exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff and
 * Jitter"): after the n-th failure in a row (n = 1, 2, ...) the wait is uniform in
 * [0, min(maxMs, baseMs * 2^(n-1))), floored at MIN_WAIT_MS so a run of tiny draws never spins.
 * `random` is injected (tests pin it); a success resets the count.
 */
export const MIN_WAIT_MS = 50;

export class Backoff {
  private failures = 0;

  constructor(
    private readonly opts: { baseMs?: number; maxMs: number; random?: () => number },
  ) {}

  /** Records one more failure and returns how long to wait before the next try. */
  next(): number {
    const base = this.opts.baseMs ?? 1000;
    const ceiling = Math.min(this.opts.maxMs, base * 2 ** Math.min(this.failures, 52));
    this.failures++;
    const r = (this.opts.random ?? Math.random)();
    return Math.max(MIN_WAIT_MS, Math.floor(r * ceiling));
  }

  reset(): void {
    this.failures = 0;
  }

  get count(): number {
    return this.failures;
  }
}
