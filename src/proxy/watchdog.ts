/**
 * The first-byte and idle bounds of one proxied connection (docs/proxy.md, "Timeouts"; `proxy:` in
 * docs/policy.md). The connect bound is the upstream leg's own (upstream.ts).
 *
 * Guaranteed:
 * - first byte: while the upstream has not answered, it must send a byte within `firstByteMs` of
 *   the last byte sent to it; so a workload that keeps sending (a slow upload) is never cut off by
 *   it, and an upstream that accepts and never writes is (`expired("first_byte")`). Nothing is
 *   awaited before a byte was sent (a server that speaks first), and its first byte ends the wait
 *   for good, unless `expectAnswer` says a new request begins (interception, which knows where
 *   requests begin; a splice does not, so after the first answer only the idle bound applies);
 * - idle: without a byte either way for `idleMs` the connection ends (`expired("idle")`);
 * - nothing bounds the whole duration: a connection that keeps moving bytes lives on;
 * - `expired` is called at most once, never after `stop()`.
 * Bytes only move timestamps; the one timer is re-armed when it fires early or when an answer
 * starts being awaited, so a busy connection costs no timer per chunk.
 */
import type { ProxySettings } from "../policy/model.ts";

export type Expiry = "first_byte" | "idle";

/** How an expiry is recorded (conn_close, http_request); `side` names the far end: the upstream, or an inbound listener's backend. */
export function expiryFields(why: Expiry, t: Pick<ProxySettings, "firstByteTimeoutMs" | "idleTimeoutMs">, side: "upstream" | "backend"): { outcome: string; reason: string; detail: string } {
  if (why === "first_byte") return { outcome: `${side}_failed`, reason: `${side}_first_byte_timeout`, detail: `no byte from the ${side} within ${t.firstByteTimeoutMs} ms of the last byte sent to it` };
  return { outcome: "terminated", reason: "idle_timeout", detail: `no byte either way for ${t.idleTimeoutMs} ms` };
}

/** Timers hold at most 2^31 - 1 ms; a longer bound is waited for in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class Watchdog {
  #last: number;
  #lastSent = 0;
  #awaiting = false;
  #answered = false;
  #timer: ReturnType<typeof setTimeout> | null = null;
  /** When the armed timer fires (the `now` clock). */
  #timerAt = 0;
  #stopped = false;

  constructor(
    private bounds: Pick<ProxySettings, "firstByteTimeoutMs" | "idleTimeoutMs">,
    private readonly expired: (why: Expiry) => void,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.#last = now();
    this.#arm();
  }

  /** A byte went toward the upstream. */
  sent(): void {
    const t = this.now();
    this.#last = t;
    this.#lastSent = t;
    if (this.#awaiting || this.#answered) return;
    this.#awaiting = true;
    this.#arm(); // the first-byte deadline may come before the idle one
  }

  /** A byte came from the upstream: it answered. */
  received(): void {
    this.#last = this.now();
    this.#awaiting = false;
    this.#answered = true;
  }

  /** A new request begins: its answer is awaited from the next byte sent. */
  expectAnswer(): void {
    this.#answered = false;
  }

  /** Other bounds from now on (an intercepted request decided by a rule with its own); a deadline they bring nearer is armed. */
  setBounds(bounds: Pick<ProxySettings, "firstByteTimeoutMs" | "idleTimeoutMs">): void {
    this.bounds = bounds;
    this.#arm();
  }

  /** A byte from the workload that is not (yet) sent on: it counts for idle only. */
  moved(): void {
    this.#last = this.now();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #due(): number {
    const idle = this.#last + this.bounds.idleTimeoutMs;
    return this.#awaiting ? Math.min(idle, this.#lastSent + this.bounds.firstByteTimeoutMs) : idle;
  }

  /**
   * A timer that fires no later than the deadline is kept: firing early only looks again and
   * re-arms (#fire). So a kept-alive connection does not clear and set a timer per request, which
   * showed in the intercepting hop's profile; it fires about once per first-byte bound instead.
   */
  #arm(): void {
    if (this.#stopped) return;
    const now = this.now();
    const due = this.#due();
    if (this.#timer !== null && this.#timerAt <= due) return;
    if (this.#timer !== null) clearTimeout(this.#timer);
    const wait = Math.min(MAX_TIMER_MS, Math.max(1, Math.ceil(due - now)));
    this.#timerAt = now + wait;
    this.#timer = setTimeout(() => this.#fire(), wait);
  }

  #fire(): void {
    this.#timer = null;
    if (this.#stopped) return;
    const t = this.now();
    const why: Expiry | null = this.#awaiting && t >= this.#lastSent + this.bounds.firstByteTimeoutMs ? "first_byte" : t >= this.#last + this.bounds.idleTimeoutMs ? "idle" : null;
    if (why === null) return this.#arm();
    this.stop();
    this.expired(why);
  }
}
