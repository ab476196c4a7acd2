/**
 * Keeps a long-running process's memory within a headroom of where its last full collection left
 * it. Under connection churn the agents' RSS climbs for several seconds and falls back at each full
 * collection of the JavaScript heap, a sawtooth 15-20 % of the RSS wide: a closed connection's
 * wrappers are promoted before they die, young collections do not free them, and the native
 * memory behind them waits with them (docs/benchmarks.md, "Soak"). JavaScriptCore starts a full
 * collection once the heap has grown to a multiple of what the last one left, counting the heap
 * alone, so the native memory gathers unseen.
 *
 * The governor counts what JavaScriptCore does not: closed connections, against the RSS. Every
 * CHECK_MS it reads the RSS; when it stands more than HEADROOM_BYTES above the floor (the lowest
 * RSS since the last collection the governor made, or what that collection left) and at least
 * MIN_CHURN connections have closed since that collection, it makes a full collection, at most
 * once every MIN_SPACING_MS. The check after a collection takes the RSS then as the new floor, so
 * memory the process really holds (more open connections) raises the floor after one collection
 * instead of making it collect again and again.
 *
 * A full collection stops the process's one JavaScript thread for about 10 ms with the L4 agent's
 * heap. Under keep-alive load, where the RSS also climbs but few connections close, collections
 * made on the RSS alone cost about 10 % on the L4 benchmark's p99 in alternating runs, so
 * connections that close are what it answers. Idle, or under keep-alive load, it does nothing;
 * under the soak's churn it collects every 3-5 s; at the L4 benchmark's rate of new connections
 * once a second, its most (docs/benchmarks.md, "Soak").
 *
 * Bun only (`bun:jsc`), so it sits in the runtime adapters, not the portable core.
 */
import { fullGC } from "bun:jsc";

export const HEADROOM_BYTES = 6 * 1048576;
export const CHECK_MS = 250;
export const MIN_SPACING_MS = 1000;
/** Connections closed since the last collection before the governor makes another: about 1.5 MiB of what they leave behind. */
export const MIN_CHURN = 256;

export interface GovernorOptions {
  readonly headroomBytes?: number;
  readonly minSpacingMs?: number;
  /** The process's resident set, bytes. */
  readonly rss?: () => number;
  /** A full collection, synchronous. */
  readonly collect?: () => void;
  /** Milliseconds, monotonic. */
  readonly now?: () => number;
  /** Connections closed so far, a count that only grows (in-flight.ts `connectionsClosed`); without it, the RSS alone decides. */
  readonly churn?: () => number;
  readonly minChurn?: number;
}

export class HeapGovernor {
  readonly #headroom: number;
  readonly #spacing: number;
  readonly #rss: () => number;
  readonly #collect: () => void;
  readonly #now: () => number;
  readonly #churn: (() => number) | null;
  readonly #minChurn: number;
  #churnAtCollect: number;
  #floor: number;
  #lastCollect = Number.NEGATIVE_INFINITY;
  #settling = false;
  #collections = 0;

  constructor(o: GovernorOptions = {}) {
    this.#headroom = o.headroomBytes ?? HEADROOM_BYTES;
    this.#spacing = o.minSpacingMs ?? MIN_SPACING_MS;
    this.#rss = o.rss ?? (() => process.memoryUsage.rss());
    this.#collect = o.collect ?? (() => void fullGC());
    this.#now = o.now ?? (() => performance.now());
    this.#churn = o.churn ?? null;
    this.#minChurn = o.minChurn ?? MIN_CHURN;
    this.#churnAtCollect = this.#churn?.() ?? 0;
    this.#floor = this.#rss();
  }

  /** Full collections the governor has made. */
  get collections(): number {
    return this.#collections;
  }

  /** The RSS the governor measures growth from, bytes. */
  get floor(): number {
    return this.#floor;
  }

  /** One check; true when it made a collection. */
  check(): boolean {
    const rss = this.#rss();
    if (this.#settling) {
      // what the last collection left, after the allocator has handed the freed memory back
      this.#settling = false;
      this.#floor = rss;
      return false;
    }
    if (rss < this.#floor) this.#floor = rss;
    if (rss - this.#floor <= this.#headroom) return false;
    const churn = this.#churn?.() ?? 0;
    if (this.#churn !== null && churn - this.#churnAtCollect < this.#minChurn) return false;
    const now = this.#now();
    if (now - this.#lastCollect < this.#spacing) return false;
    this.#lastCollect = now;
    this.#churnAtCollect = churn;
    this.#collect();
    this.#collections += 1;
    this.#settling = true;
    return true;
  }
}

/**
 * A governor for a command that starts serving later: `start()` (once it is serving, after
 * dropStartupCode) checks every CHECK_MS without keeping the process alive; `stop()` ends it, and
 * a start after a stop does nothing, so a command stopped while starting never begins to govern.
 */
export function heapGovernor(o: GovernorOptions = {}): { start(): void; stop(): void; readonly governor: HeapGovernor | null } {
  let governor: HeapGovernor | null = null;
  let timer: ReturnType<typeof setInterval> | null = null;
  let stopped = false;
  return {
    start() {
      if (stopped || timer !== null) return;
      const g = new HeapGovernor(o);
      governor = g;
      timer = setInterval(() => g.check(), CHECK_MS);
      timer.unref();
    },
    stop() {
      stopped = true;
      if (timer !== null) clearInterval(timer);
      timer = null;
    },
    get governor() {
      return governor;
    },
  };
}
