/**
 * An upstream leg of interception: one TLS or mTLS connection that carries requests one at a time,
 * with the parser of its responses. At any time it has one owner: the exchange whose request it
 * carries, or the pool while it is idle (leg-pool.ts). Bytes are only ever handed to the owner.
 *
 * Writes keep their order: once a write is short, later bytes queue behind the rest until the
 * socket drains, and the owner hears `legDrain` when the queue is empty again.
 */
import { copyOf } from "../../http1/bytes.ts";
import type { Socket } from "bun";
import { ResponseParser } from "../../http1/index.ts";
import type { Splice } from "../splice.ts";
import type { UpData } from "../upstream.ts";
import type { SpiffeId } from "../../spiffe/id.ts";

export interface LegOwner {
  legData(leg: UpstreamLeg, chunk: Uint8Array): void;
  /** The upstream ended or closed: the leg carries nothing more. */
  legEnded(leg: UpstreamLeg): void;
  /** What was queued has been written. */
  legDrain(leg: UpstreamLeg): void;
}

export class UpstreamLeg {
  readonly parser = new ResponseParser();
  #queue: Uint8Array[] = [];
  #closed = false;
  #gone = false;
  /** Our side was ended (socket.end): the socket is let go, whoever ended first. */
  #shut = false;
  #shutdownAfterDrain = false;
  /** The last response ended and both sides keep the connection alive: it may carry another. */
  reusable = false;
  /** Responses it carried in full. */
  served = 0;
  owner: LegOwner | null = null;

  constructor(
    /** What it may be reused for (exchange.ts `legKey`). */
    readonly key: string,
    readonly socket: Socket<UpData>,
    /** mTLS: the upstream's verified SPIFFE ID. */
    readonly peerId: string | null,
    readonly connId: string,
    /** mTLS: the upstream's ID and the bundle authority its path ended at (peer-verifier.ts `stillAnchored`: a bundle change). */
    readonly peer: { readonly id: SpiffeId; readonly anchor: Uint8Array } | null = null,
  ) {
    const splice = {
      down: { data: (c: Uint8Array) => this.owner?.legData(this, c), ended: () => this.#ended(), drain() {} },
      up: { data() {}, ended() {}, drain: () => this.#drain() },
      upstreamClosed: () => this.#ended(),
      clientClosed() {},
    };
    socket.data.sp = splice as unknown as Splice;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Hands the owner what the upstream sent before the leg was wrapped, then lets bytes flow. */
  start(): void {
    const d = this.socket.data;
    for (const chunk of d.early) this.owner?.legData(this, chunk);
    d.early = [];
    if (d.closed || d.ended) this.#ended();
    else this.socket.resume();
  }

  /** False: part of it is queued, and the owner will hear legDrain. */
  send(bytes: Uint8Array): boolean {
    if (this.#closed) return true;
    // copies by copyOf, not slice: `bytes` may be a read Bun handed over (src/http1/bytes.ts)
    if (this.#queue.length > 0) {
      this.#queue.push(copyOf(bytes));
      return false;
    }
    const n = Math.max(0, this.socket.write(bytes));
    if (n < bytes.length) {
      this.#queue.push(copyOf(bytes, n));
      return false;
    }
    return true;
  }

  get queued(): boolean {
    return this.#queue.length > 0;
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  /** Half-closes toward the upstream once what is queued is written (a tunnel's client ended). */
  endWrites(): void {
    this.reusable = false;
    if (this.#queue.length === 0) this.socket.shutdown();
    else this.#shutdownAfterDrain = true;
  }

  /**
   * Closes it for good: it is never reused. Also after the upstream ended first: the socket is
   * half-open (allowHalfOpen), so until our side ends too it stays in CLOSE-WAIT, holding its
   * descriptor and keeping the process's event loop alive.
   */
  end(): void {
    this.#closed = true;
    this.reusable = false;
    if (this.#shut) return;
    this.#shut = true;
    this.socket.end();
  }

  /** The upstream's end or close: the owner hears it once. */
  #ended(): void {
    this.#closed = true;
    this.reusable = false;
    if (this.#gone) return;
    this.#gone = true;
    this.owner?.legEnded(this);
  }

  #drain(): void {
    while (this.#queue.length > 0) {
      const b = this.#queue[0]!;
      const n = Math.max(0, this.socket.write(b));
      if (n < b.length) {
        this.#queue[0] = b.subarray(n);
        return;
      }
      this.#queue.shift();
    }
    if (this.#shutdownAfterDrain) this.socket.shutdown();
    this.owner?.legDrain(this);
  }
}
