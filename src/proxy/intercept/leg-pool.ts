/**
 * Idle upstream legs of interception, kept for the next connection with the same key (issue 8:
 * pooled per rule, upstream and identity). The key (exchange.ts `legKey`) holds the caller's
 * SPIFFE ID, the rule's name and everything the leg's TLS vouched for: address, port, server name,
 * the CA file's content hash (tls) or the credential's serial, the server ID and the trust
 * bundles' generation (mtls); so a rotated SVID, a changed bundle or CA file, or another caller
 * never gets a leg made for something else.
 *
 * Guarantees:
 * - a leg is given back only between requests (its last response ended, both sides keep alive,
 *   nothing queued); anything else is closed;
 * - an idle leg that receives a byte is closed (a response to nothing), and one the upstream ends
 *   is dropped;
 * - at most `maxIdlePerKey` idle legs per key and `maxIdle` in all (the oldest idle one is closed
 *   to make room), each idle at most `idleMs`; `take` gives the most recently used one.
 */
import type { LegOwner, UpstreamLeg } from "./upstream-leg.ts";

export interface LegPoolOptions {
  readonly idleMs?: number;
  readonly maxIdlePerKey?: number;
  readonly maxIdle?: number;
}

/** Shorter than the usual keep-alive timeout of servers (nginx 75 s, Node 5 s, Go 90 s): fewer legs die in the pool. */
export const LEG_IDLE_MS = 4_000;

export class LegPool implements LegOwner {
  readonly #idleMs: number;
  readonly #maxPerKey: number;
  readonly #max: number;
  /** Idle legs by key, oldest first; Map order is the order they became idle. */
  readonly #byKey = new Map<string, UpstreamLeg[]>();
  readonly #timers = new Map<UpstreamLeg, ReturnType<typeof setTimeout>>();

  constructor(opts: LegPoolOptions = {}) {
    this.#idleMs = opts.idleMs ?? LEG_IDLE_MS;
    this.#maxPerKey = opts.maxIdlePerKey ?? 16;
    this.#max = opts.maxIdle ?? 256;
  }

  get idle(): number {
    return this.#timers.size;
  }

  /** An idle leg for `key`, now owned by nobody (the caller sets `owner`), or null. */
  take(key: string): UpstreamLeg | null {
    const list = this.#byKey.get(key);
    while (list !== undefined && list.length > 0) {
      const leg = list.pop()!;
      this.#forget(leg, list, key);
      if (!leg.closed) {
        leg.owner = null;
        return leg;
      }
    }
    return null;
  }

  /** Keeps the leg for its key if it may carry another request, else closes it. */
  give(leg: UpstreamLeg): void {
    if (!leg.reusable || leg.closed || leg.queued || this.#idleMs <= 0) return leg.end();
    let list = this.#byKey.get(leg.key);
    if (list === undefined) this.#byKey.set(leg.key, (list = []));
    if (list.length >= this.#maxPerKey) this.#drop(list[0]!);
    if (this.#timers.size >= this.#max) this.#dropOldest();
    leg.owner = this;
    leg.resume();
    list.push(leg);
    const timer = setTimeout(() => this.#drop(leg), this.#idleMs);
    (timer as { unref?: () => void }).unref?.();
    this.#timers.set(leg, timer);
  }

  /** Closes every idle leg (the listener stops). */
  close(): void {
    for (const leg of [...this.#timers.keys()]) this.#drop(leg);
  }

  legData(leg: UpstreamLeg): void {
    this.#drop(leg);
  }

  legEnded(leg: UpstreamLeg): void {
    this.#drop(leg);
  }

  legDrain(): void {}

  #drop(leg: UpstreamLeg): void {
    const list = this.#byKey.get(leg.key);
    if (list !== undefined) {
      const i = list.indexOf(leg);
      if (i >= 0) list.splice(i, 1);
      this.#forget(leg, list, leg.key);
    }
    leg.owner = null;
    leg.end();
  }

  #dropOldest(): void {
    const oldest = this.#timers.keys().next();
    if (!oldest.done) this.#drop(oldest.value);
  }

  #forget(leg: UpstreamLeg, list: UpstreamLeg[], key: string): void {
    const t = this.#timers.get(leg);
    if (t !== undefined) clearTimeout(t);
    this.#timers.delete(leg);
    if (list.length === 0) this.#byKey.delete(key);
  }
}
