/**
 * Token buckets per key (a node name, a source address): `ratePerSecond` tokens a second, burst
 * of one second's worth (at least one request). `take` answers 0 when the request may go on, or the whole seconds to wait
 * (the Retry-After value) when it may not. Idle buckets are dropped so a stream of new source
 * addresses cannot grow the map without bound.
 */
export class RateLimiter {
  readonly #rate: number;
  readonly #burst: number;
  readonly #now: () => number;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  #lastSweep = 0;

  constructor(ratePerSecond: number, now: () => number = () => Date.now()) {
    if (!(ratePerSecond > 0)) throw new RangeError("rate limit: ratePerSecond must be > 0");
    this.#rate = ratePerSecond;
    this.#burst = Math.max(1, ratePerSecond);
    this.#now = now;
  }

  take(key: string): number {
    const now = this.#now();
    this.#sweep(now);
    const b = this.#buckets.get(key);
    const tokens = b === undefined ? this.#burst : Math.min(this.#burst, b.tokens + ((now - b.at) / 1000) * this.#rate);
    if (tokens >= 1) {
      this.#buckets.set(key, { tokens: tokens - 1, at: now });
      return 0;
    }
    this.#buckets.set(key, { tokens, at: now });
    return Math.max(1, Math.ceil((1 - tokens) / this.#rate));
  }

  get size(): number {
    return this.#buckets.size;
  }

  /** Every few seconds, forget buckets that have refilled completely (they equal a new one). */
  #sweep(now: number): void {
    if (now - this.#lastSweep < 5000) return;
    this.#lastSweep = now;
    for (const [k, b] of this.#buckets) {
      if (b.tokens + ((now - b.at) / 1000) * this.#rate >= this.#burst) this.#buckets.delete(k);
    }
  }
}
