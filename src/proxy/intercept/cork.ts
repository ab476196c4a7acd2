/**
 * The workload's side, corked while the exchange handles one read from the upstream: what that
 * read produces for the client (a response's head, its body, the chunk framing) goes out as one
 * write, so one send(2) (one TLS record when the client's TLS is terminated) instead of one per
 * part. On loopback each send also runs the receiver's side of TCP and wakes it, so on the
 * intercepting hop the number of sends per request is what its CPU is mostly spent on
 * (docs/benchmarks.md, "Interception").
 *
 * Order is kept: every write goes through here, and `end` writes what is queued first; `abort`
 * drops it (the connection is reset anyway).
 */
import { concatBytes } from "../mcp/http-filter.ts";
import type { ClientSide } from "./exchange.ts";

export class CorkedClient implements ClientSide {
  /** While corked: what waits for `uncork` (the same array each time: emptied, never replaced). */
  readonly #queue: Uint8Array[] = [];
  #corked = false;
  /** Where several queued writes are joined; kept for the next uncork (plain clients only). */
  #joined = new Uint8Array(0);

  /**
   * `reusable`: the inner side is done with the bytes when `write` returns (a Bun socket: what it
   * cannot take at once, plainClient copies), so one buffer can join every uncork's writes. A TLS
   * stream may keep the chunk it was given: then each join is a new buffer.
   */
  constructor(
    private readonly inner: ClientSide,
    private readonly reusable = false,
  ) {}

  /** Later writes are queued until `uncork`. */
  cork(): void {
    this.#corked = true;
  }

  /** Writes what was queued, as one write; false when the client could not take it all (its drain follows). */
  uncork(): boolean {
    const q = this.#queue;
    this.#corked = false;
    if (q.length === 0) return true;
    if (q.length === 1) {
      const only = q[0]!;
      q.length = 0;
      return this.inner.write(only);
    }
    if (!this.reusable) {
      const all = concatBytes(q);
      q.length = 0;
      return this.inner.write(all);
    }
    let size = 0;
    for (let i = 0; i < q.length; i++) size += q[i]!.length;
    if (this.#joined.length < size) this.#joined = new Uint8Array(Math.max(size, this.#joined.length * 2, 4096));
    let at = 0;
    for (let i = 0; i < q.length; i++) {
      this.#joined.set(q[i]!, at);
      at += q[i]!.length;
    }
    q.length = 0;
    return this.inner.write(this.#joined.subarray(0, at));
  }

  /** Corked: queued, and true (the caller learns of backpressure from `uncork`). */
  write(bytes: Uint8Array): boolean {
    if (!this.#corked) return this.inner.write(bytes);
    this.#queue.push(bytes);
    return true;
  }

  end(): void {
    this.uncork();
    this.inner.end();
  }

  abort(): void {
    this.#queue.length = 0;
    this.#corked = false;
    this.inner.abort();
  }

  pause(): void {
    this.inner.pause();
  }

  resume(): void {
    this.inner.resume();
  }
}
