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
}

interface Entry extends Tracked {
  ended: Fields | null;
  recorded: boolean;
  readonly reset: () => void;
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
          this.#live.delete(entry);
          events.close(entry.ended !== null ? { ...f, ...entry.ended } : f);
          entry.control = null;
          entry.fields = NO_FIELDS;
        },
      },
      control: null,
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

  /** Ends every connection still open; how many. */
  endAll(fields: Fields): number {
    let n = 0;
    for (const e of [...this.#live]) if (this.end(e, fields)) n++;
    return n;
  }
}
