/**
 * The connections of one listener from accept to their `conn_close`, so that a connection can be
 * ended by the proxy with a recorded reason (a timeout, watchdog.ts) and a stopping agent can let
 * them finish, then cut the rest (docs/proxy.md, "Stopping").
 *
 * Guaranteed:
 * - every connection's `conn_close` is written once; a second `close` is ignored;
 * - a connection the proxy ended (`end`) is recorded with the fields it was ended with (outcome,
 *   reason, detail) over what its path says when it winds up (bytes, upstream, ...);
 * - `end` records at once: a connection that forwards (`control` set) is cut by its path, which
 *   writes its record synchronously; one that does not forward yet is recorded with what is known
 *   of it (`fields`) and its socket reset; whatever its path does later records nothing more;
 * - `size` counts the connections whose record is not written yet;
 * - `recheck` asks every connection that has a check (`Tracked.recheck`: one whose bytes pass
 *   unparsed, so nothing else would look at it again) whether it still holds under what is in
 *   force, and ends each that does not, recorded with what its check said;
 * - once recorded, a connection's `control` and `fields` are let go of (null and empty): its
 *   socket keeps the entry until the collector takes it, and what they hold (the path's state)
 *   can then be freed young (docs/benchmarks.md, "Soak").
 */
import type { ConnAudit } from "./conn-audit.ts";

type Fields = Record<string, unknown>;

const NO_FIELDS: Fields = Object.freeze({});

/** How a forwarding connection ends early: after the exchange in progress (`drain`), or now (`cut`). */
export interface ConnControl {
  drain(): void;
  /** Ends it now, its record written before this returns; `why` is what it will say (outcome, reason, detail). */
  cut(why: Readonly<Fields>): void;
}

export interface Tracked {
  /** Its events: `close` once, the fields it was ended with over the path's. */
  readonly events: ConnAudit;
  /** Set once it forwards. */
  control: ConnControl | null;
  /** What is known of it so far (the caller, the decision), for a record written before it forwards. */
  fields: Fields;
  /** Why the proxy ended it, or null. */
  readonly ended: Fields | null;
  /**
   * Set once it forwards, where nothing else decides it again (a splice, a tunnel): why it no
   * longer holds under the policy and registration in force (outcome, reason, detail), or null.
   */
  recheck: (() => Fields | null | Promise<Fields | null>) | null;
}

/** What `recheck` did: how many it ended, and the first check that threw (that connection is left as it is). */
export interface Rechecked {
  readonly cut: number;
  readonly failed: number;
  readonly error: string | null;
}

/** A recheck that ended nothing. */
export const NONE_ENDED: Rechecked = Object.freeze({ cut: 0, failed: 0, error: null });

/** Several `recheck` results as one. */
export function sumRechecked(all: readonly Rechecked[]): Rechecked {
  return { cut: all.reduce((n, r) => n + r.cut, 0), failed: all.reduce((n, r) => n + r.failed, 0), error: all.find((r) => r.error !== null)?.error ?? null };
}

interface Entry extends Tracked {
  ended: Fields | null;
  recorded: boolean;
  readonly reset: () => void;
}

/** Connections whose `conn_close` was written, over every InFlight of the process (heap-governor.ts reads it). */
let closedInProcess = 0;

/** How many connections of any listener of this process have been recorded closed so far. */
export function connectionsClosed(): number {
  return closedInProcess;
}

export class InFlight {
  readonly #live = new Set<Entry>();
  #draining = false;

  /** Tracks a new connection; `reset` closes its socket at once. */
  open(events: ConnAudit, reset: () => void): Tracked {
    const entry: Entry = {
      events: {
        open: (f) => events.open(f),
        connId: () => events.connId(),
        close: (f) => {
          if (entry.recorded) return;
          entry.recorded = true;
          closedInProcess += 1;
          this.#live.delete(entry);
          events.close(entry.ended !== null ? { ...f, ...entry.ended } : f);
          entry.control = null;
          entry.recheck = null;
          entry.fields = NO_FIELDS;
        },
      },
      control: null,
      recheck: null,
      fields: {},
      ended: null,
      recorded: false,
      reset,
    };
    this.#live.add(entry);
    return entry;
  }

  get size(): number {
    return this.#live.size;
  }

  /** True once `drain` was called: a connection that starts forwarding after it drains at once. */
  get draining(): boolean {
    return this.#draining;
  }

  /** Asks every forwarding connection to end after the exchange in progress. */
  drain(): void {
    this.#draining = true;
    for (const e of [...this.#live]) e.control?.drain();
  }

  /** Ends `t` now, recorded with `fields` (outcome, reason, detail); false when it was already ended or recorded. */
  end(t: Tracked, fields: Fields): boolean {
    const e = t as Entry;
    if (e.recorded || e.ended !== null) return false;
    e.ended = fields;
    if (e.control !== null) e.control.cut(fields);
    if (!e.recorded) {
      // Not forwarding yet (or its path had nothing to record): recorded with what is known.
      e.events.close(e.fields);
      e.reset();
    }
    return true;
  }

  /**
   * Asks each open connection that has a check whether it still holds, and ends (`end`) each whose
   * check gives a reason. Checks run together; one that throws leaves its connection as it is and
   * is counted in `failed`.
   */
  async recheck(): Promise<Rechecked> {
    const results = await Promise.all([...this.#live].filter((e) => e.recheck !== null && e.ended === null).map((e) => this.#check(e)));
    const error = results.find((r) => typeof r === "string") ?? null;
    return { cut: results.filter((r) => r === true).length, failed: results.filter((r) => typeof r === "string").length, error };
  }

  /** True: ended; false: it holds (or was ended already); a string: its check threw, with that message. */
  async #check(e: Entry): Promise<boolean | string> {
    const check = e.recheck;
    if (check === null || e.ended !== null || e.recorded) return false;
    try {
      const why = await check();
      return why !== null && this.end(e, why);
    } catch (err) {
      return err instanceof Error ? err.message : String(err);
    }
  }

  /** Ends every connection still open; how many. */
  endAll(fields: Fields): number {
    let n = 0;
    for (const e of [...this.#live]) if (this.end(e, fields)) n++;
    return n;
  }
}
