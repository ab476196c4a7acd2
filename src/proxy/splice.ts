/**
 * Bytes both ways between two Bun sockets, with backpressure (PLATFORM-NOTES, "A Bun data path"):
 * on a short write the source is paused, the rest is kept and flushed on `drain`, then the source
 * resumes; so memory stays bounded by one chunk per direction whatever the speeds. A FIN from one
 * side is passed on once what it sent has been written; the splice ends when both directions have
 * ended, or at once on an error or a close of either side, or when `abort` cuts it (a timeout,
 * the agent's drain deadline): both sockets are then reset, so neither end can take a cut stream
 * for a complete one. Counts bytes each way, and tells an optional watch (watchdog.ts) of every
 * chunk. Both sockets must be opened with `allowHalfOpen: true`: otherwise Bun closes a socket
 * when its FIN arrives and what still flows the other way is lost.
 *
 * Once it has ended (after `onFinished`), a splice lets go of both ends, `onFinished` and the
 * watch: the sockets keep it (as their `data`) until the collector takes them, and what it let go
 * of (the connection's state, which `onFinished` holds) can then be freed by a young collection
 * instead of waiting, promoted, for a full one (docs/benchmarks.md, "Soak"). Nothing is called on
 * an ended splice's ends; its byte counts stay.
 */
import type { Socket } from "bun";
import { staged } from "../http1/bytes.ts";

export interface SpliceEnd {
  /** Writes `data[offset, data.length)` (offset 0 when absent); the bytes taken. */
  write(data: Uint8Array, offset?: number): number;
  pause(): void;
  resume(): void;
  shutdown(): void;
  end(): void;
  /** Closes at once, with a reset. */
  terminate(): void;
}

/** Told of each chunk: toward the upstream (`sent`) and back (`received`). */
export interface SpliceWatch {
  sent(): void;
  received(): void;
}

/** An end that does nothing: what an ended splice holds instead of its sockets. */
const DETACHED: SpliceEnd = { write: () => 0, pause() {}, resume() {}, shutdown() {}, end() {}, terminate() {} };
const NOTHING = () => {};

/** One direction: from `src` to `dst`. */
class Direction {
  bytes = 0;
  /**
   * What the destination did not take yet: `pending[pendingAt, pending.length)`. An offset, not a
   * subarray: a view of a read Bun handed over has the runtime give that read an ArrayBuffer of
   * its own (src/http1/bytes.ts copyOf), and a short write happens on every read under load.
   */
  private pending: Uint8Array | null = null;
  private pendingAt = 0;
  private srcEnded = false;
  done = false;

  constructor(
    private src: SpliceEnd,
    private dst: SpliceEnd,
    private onDone: () => void,
    private onChunk: (() => void) | null,
  ) {}

  /** Lets go of the ends and callbacks; only once `done`, when nothing calls them any more. */
  detach(): void {
    this.src = DETACHED;
    this.dst = DETACHED;
    this.onDone = NOTHING;
    this.onChunk = null;
    this.pending = null;
  }

  data(chunk: Uint8Array): void {
    if (this.done) return;
    this.onChunk?.();
    const p = this.pending;
    if (p !== null) {
      // Bun may deliver data that was in flight when the source was paused.
      const rest = p.length - this.pendingAt;
      const joined = new Uint8Array(rest + chunk.length);
      joined.set(this.pendingAt === 0 ? p : staged(p).subarray(this.pendingAt, p.length));
      joined.set(chunk, rest);
      this.pending = joined;
      this.pendingAt = 0;
      return;
    }
    this.push(chunk, 0);
  }

  private push(chunk: Uint8Array, at: number): void {
    const n = Math.max(0, this.dst.write(chunk, at));
    this.bytes += n;
    if (at + n < chunk.length) {
      this.pending = chunk;
      this.pendingAt = at + n;
      this.src.pause();
    }
  }

  /** The destination can take more. */
  drain(): void {
    if (this.pending === null) return;
    const rest = this.pending;
    const at = this.pendingAt;
    this.pending = null;
    this.push(rest, at);
    if (this.pending === null) {
      if (this.srcEnded) this.finish();
      else this.src.resume();
    }
  }

  /** The source sent FIN (its stream is whole). */
  get sourceEnded(): boolean {
    return this.srcEnded;
  }

  /** The source sent FIN. */
  ended(): void {
    this.srcEnded = true;
    if (this.pending === null) this.finish();
  }

  /** The destination is gone: nothing more can be delivered this way. */
  abort(): void {
    this.pending = null;
    if (this.done) return;
    this.done = true;
    this.onDone();
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.dst.shutdown();
    this.onDone();
  }
}

export interface Splice {
  readonly up: { data(chunk: Uint8Array): void; drain(): void; ended(): void };
  readonly down: { data(chunk: Uint8Array): void; drain(): void; ended(): void };
  /**
   * The client's socket closed (Bun may report a peer's FIN+close as `close` alone). `reset`: it
   * was reset (ECONNRESET) before its FIN: the splice is cut as by `abort`, so the upstream gets a
   * reset too, never a FIN that would pass the cut stream off as whole.
   */
  clientClosed(reset?: boolean): void;
  /** The same for the upstream's socket. */
  upstreamClosed(reset?: boolean): void;
  /** Ends it now: both sockets reset, `onFinished` run (once, as ever). */
  abort(): void;
  bytesUp(): number;
  bytesDown(): number;
}

/**
 * `client` is the accepted socket, `upstream` the one the proxy opened. Wire the sockets' events
 * to the returned handlers: client data -> up.data, upstream drain -> up.drain, client end ->
 * up.ended; upstream data -> down.data, client drain -> down.drain, upstream end -> down.ended.
 * `onFinished` runs once, when both directions have ended. A socket's `close` is wired to
 * clientClosed / upstreamClosed: what it sent is complete, and nothing more can reach it.
 */
export function splice(client: SpliceEnd, upstream: SpliceEnd, onFinished: () => void, watch: SpliceWatch | null = null): Splice {
  let finished = false;
  // What an ended splice lets go of (see the module's comment).
  let ends: { client: SpliceEnd; upstream: SpliceEnd; onFinished: () => void } | null = { client, upstream, onFinished };
  const finish = (last: (e: NonNullable<typeof ends>) => void) => {
    const e = ends!;
    ends = null;
    last(e);
    e.onFinished();
    up.detach();
    down.detach();
  };
  const check = () => {
    if (!finished && up.done && down.done) {
      finished = true;
      finish((e) => {
        e.client.end();
        e.upstream.end();
      });
    }
  };
  // bound, not closures over `watch`: nothing but the directions (detached at the end) holds it
  const up = new Direction(client, upstream, check, watch === null ? null : watch.sent.bind(watch));
  const down = new Direction(upstream, client, check, watch === null ? null : watch.received.bind(watch));
  const abort = () => {
    if (finished) return;
    finished = true;
    up.abort();
    down.abort();
    finish((e) => {
      e.client.terminate();
      e.upstream.terminate();
    });
  };
  return {
    up: { data: (c) => up.data(c), drain: () => up.drain(), ended: () => up.ended() },
    down: { data: (c) => down.data(c), drain: () => down.drain(), ended: () => down.ended() },
    clientClosed: (reset = false) => {
      if (reset && !up.sourceEnded) return abort();
      up.ended();
      down.abort();
    },
    upstreamClosed: (reset = false) => {
      if (reset && !down.sourceEnded) return abort();
      down.ended();
      up.abort();
    },
    abort,
    bytesUp: () => up.bytes,
    bytesDown: () => down.bytes,
  };
}

/** A Bun socket as a splice end. */
export function endOf(s: Socket<unknown>): SpliceEnd {
  return {
    write: (d, offset = 0) => (offset === 0 ? s.write(d) : s.write(d, offset, d.length - offset)),
    pause: () => s.pause(),
    resume: () => s.resume(),
    shutdown: () => s.shutdown(),
    end: () => void s.end(),
    terminate: () => s.terminate(),
  };
}
