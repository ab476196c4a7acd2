/**
 * The push parser shared by both directions: bytes in, events out, never a body buffered.
 *
 * `push(bytes)` returns, in order, for each message: "head", "body" events (views into `bytes`),
 * "end"; several messages may come from one push (pipelining). Only a head or trailer section cut
 * across pushes is copied (at most maxHeadBytes). Events do not depend on how the stream is cut,
 * except that body bytes come in as many pieces as the pushes and chunks cut them.
 *
 * A stream that breaks HTTP/1.1 gives the events up to the break, then one "error" event (an
 * Http1Error); the parser is then spent: every later push or finish gives that error again.
 * After a message that ends the connection (keepAlive false), later bytes are ignored (RFC 9112
 * section 9.6: nothing after "close" is processed).
 *
 * A head whose bytes repeat the previous head's exactly (keep-alive clients mostly send the same
 * head again) is not scanned nor parsed: it is that head again, the same frozen object, in the
 * same frozen event (so a kept-alive connection's heads make no garbage). Other heads reuse the
 * lines they share with the previous one (memo.ts). The previous head is kept for the parser's
 * life. Events are frozen; callers must not count on two messages having distinct head objects.
 */
import { fail, Http1Error, limitsOf, type Http1Limits } from "./errors.ts";
import { copyOf, HeadText, part, staged } from "./bytes.ts";
import { ChunkedDecoder } from "./chunked.ts";
import { parseFields } from "./fields.ts";
import { NO_HEADERS } from "./headers.ts";
import { sameBytes } from "./memo.ts";
import { HeadScanner } from "./scan.ts";
import type { Http1Event, RequestHead, ResponseHead } from "./types.ts";

const HEAD = 0;
const LENGTH = 1;
const CHUNKED = 2;
const TRAILERS = 3;
const CLOSE = 4;
const TUNNEL = 5;
const HELD = 6;
const DONE = 7;
const FAILED = 8;

const END: { readonly kind: "end"; readonly trailers: typeof NO_HEADERS } = Object.freeze({ kind: "end", trailers: NO_HEADERS });

/** A growable byte buffer for heads and held bytes cut across pushes. */
class Bytes {
  buf = new Uint8Array(0);
  length = 0;

  append(b: Uint8Array, from: number, to: number): void {
    const need = this.length + (to - from);
    if (need > this.buf.length) {
      const next = new Uint8Array(Math.max(need, this.buf.length * 2, 512));
      next.set(this.buf.subarray(0, this.length));
      this.buf = next;
    }
    this.buf.set(from === 0 && to === b.length ? b : staged(b).subarray(from, to), this.length);
    this.length = need;
  }

  view(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

export abstract class MessageParser<H extends RequestHead | ResponseHead> {
  protected readonly limits: Http1Limits;
  #state = HEAD;
  readonly #head: HeadScanner;
  /** Made on the first chunked body: most connections have none. */
  #trailers: HeadScanner | null = null;
  #chunks: ChunkedDecoder | null = null;
  readonly #acc = new Bytes();
  #held = new Bytes();
  #remaining = 0;
  #current: H | null = null;
  #error: Http1Error | null = null;
  /** The bytes of the last head parsed from scratch, and that head. */
  #lastBytes: Uint8Array | null = null;
  #last: H | null = null;
  /** The event of the last head pushed out: given again while the head repeats. */
  #headEvent: Readonly<{ kind: "head"; head: H }> | null = null;

  constructor(limits?: Partial<Http1Limits>) {
    this.limits = limitsOf(limits);
    this.#head = new HeadScanner(this.limits, true);
  }

  /** The head `b[0, sc.length)` delimited by `sc`; `b` is the parser's own copy. Throws Http1Error. */
  protected abstract parseHead(b: Uint8Array, sc: HeadScanner): H;
  /**
   * The head for bytes that repeat `prev`'s exactly, or null when this message's context (the
   * request a response answers) would parse them otherwise.
   */
  protected abstract repeat(prev: H): H | null;
  /** Empty lines before a start line are skipped (requests only). */
  protected abstract readonly skipEmptyLines: boolean;
  /** After the end of `head`: true to hold later bytes until resume() or tunnel(). */
  protected abstract holdsAfter(head: H): boolean;

  push(bytes: Uint8Array): Http1Event<H>[] {
    const out: Http1Event<H>[] = [];
    if (this.#error !== null) out.push({ kind: "error", error: this.#error });
    else {
      // no closure per push: this runs for every read of every intercepted connection
      try {
        this.#run(bytes, 0, out);
      } catch (e) {
        this.#failed(e, out);
      }
    }
    return out;
  }

  /**
   * The connection ended: "end" for a close-delimited body; nothing between messages, in a
   * tunnel, or while held; an http1_truncated error inside any other message.
   */
  finish(): Http1Event<H>[] {
    const out: Http1Event<H>[] = [];
    if (this.#error !== null) out.push({ kind: "error", error: this.#error });
    else {
      try {
        const s = this.#state;
        if (s === CLOSE) out.push(END);
        else if ((s === HEAD && this.#head.length > 0) || s === LENGTH || s === CHUNKED || s === TRAILERS) {
          throw fail("http1_truncated", s === HEAD ? "the connection ended inside a head" : "the connection ended inside a body");
        }
        this.#state = DONE;
      } catch (e) {
        this.#failed(e, out);
      }
    }
    return out;
  }

  /** True while bytes after a CONNECT or upgrade request wait for resume() or tunnel(). */
  get held(): boolean {
    return this.#state === HELD;
  }

  /** Inside a message (past its first byte, before its end). */
  get inMessage(): boolean {
    const s = this.#state;
    return (s === HEAD && this.#head.length > 0) || s === LENGTH || s === CHUNKED || s === TRAILERS || s === CLOSE;
  }

  /** Before the end of a head: waiting for the next message's first byte, or past it (`inHead`). */
  get awaitingHead(): boolean {
    return this.#state === HEAD;
  }

  /** Past a head's first byte, before its end. */
  get inHead(): boolean {
    return this.#state === HEAD && this.#head.length > 0;
  }

  /** Parses the held bytes as the next message (the switch of protocols did not happen). */
  resume(): Http1Event<H>[] {
    const held = this.#takeHeld();
    this.#state = this.#current?.keepAlive === false ? DONE : HEAD;
    return this.push(held);
  }

  /** The held bytes, unparsed; every later push gives "tunnel" events. */
  tunnel(): Uint8Array {
    const held = this.#takeHeld();
    this.#state = TUNNEL;
    return held;
  }

  #takeHeld(): Uint8Array {
    if (this.#state !== HELD) throw new Error(`http1: resume() or tunnel() while no bytes are held`);
    const held = this.#held.view();
    this.#held = new Bytes();
    return held;
  }

  /** An Http1Error ends the stream: this and every later push give it as an "error" event. Anything else is rethrown. */
  #failed(e: unknown, out: Http1Event<H>[]): void {
    if (!(e instanceof Http1Error)) throw e;
    this.#error = e;
    this.#state = FAILED;
    out.push({ kind: "error", error: e });
  }

  #run(b: Uint8Array, i: number, out: Http1Event<H>[]): void {
    const n = b.length;
    while (i < n) {
      const s = this.#state;
      if (s === HEAD) i = this.#headBytes(b, i, out);
      else if (s === LENGTH) {
        const take = Math.min(this.#remaining, n - i);
        out.push({ kind: "body", bytes: part(b, i, i + take) });
        i += take;
        this.#remaining -= take;
        if (this.#remaining === 0) this.#end(out, END);
      } else if (s === CHUNKED) {
        const chunks = (this.#chunks ??= new ChunkedDecoder(this.limits));
        i = chunks.run(b, i, out);
        if (chunks.last) {
          (this.#trailers ??= new HeadScanner(this.limits, false)).reset();
          this.#state = TRAILERS;
        }
      } else if (s === TRAILERS) i = this.#trailerBytes(b, i, out);
      else if (s === CLOSE || s === TUNNEL) {
        out.push({ kind: s === CLOSE ? "body" : "tunnel", bytes: part(b, i, n) });
        i = n;
      } else if (s === HELD) {
        if (this.#held.length + (n - i) > this.limits.maxHeadBytes) {
          throw fail("http1_held_too_large", `more than ${this.limits.maxHeadBytes} bytes after a CONNECT or upgrade request before resume() or tunnel()`);
        }
        this.#held.append(b, i, n);
        i = n;
      } else i = n;
    }
  }

  /** Scans `b` from `i` for the head's end; returns where the head ended, or b.length. */
  #headBytes(b: Uint8Array, i: number, out: Http1Event<H>[]): number {
    const sc = this.#head;
    const last = this.#lastBytes;
    let head: H | null = null;
    let end = -1;
    if (last !== null && sc.length === 0 && b.length - i >= last.length && sameBytes(b, i, last, 0, last.length) && this.#last !== null) {
      head = this.repeat(this.#last);
      end = i + last.length;
    }
    if (head === null) {
      end = sc.scan(b, i, this.skipEmptyLines);
      const from = sc.skippedTo >= 0 ? sc.skippedTo : i;
      if (sc.skippedTo >= 0) this.#acc.length = 0;
      if (end < 0) {
        this.#acc.append(b, from, b.length);
        return b.length;
      }
      let bytes: Uint8Array;
      if (this.#acc.length === 0) bytes = copyOf(b, from, end);
      else {
        this.#acc.append(b, from, end);
        bytes = this.#acc.view().slice();
      }
      head = this.parseHead(bytes, sc);
      this.#lastBytes = bytes;
      this.#last = head;
      sc.reset();
      this.#acc.length = 0;
    }
    this.#current = head;
    // a repeated head is the same frozen object: so is its event
    let ev = this.#headEvent;
    if (ev === null || ev.head !== head) this.#headEvent = ev = Object.freeze({ kind: "head", head } as const);
    out.push(ev);
    const framing = head.framing;
    if (framing === "length" && head.contentLength !== 0) {
      this.#remaining = head.contentLength ?? 0;
      this.#state = LENGTH;
    } else if (framing === "chunked") {
      (this.#chunks ??= new ChunkedDecoder(this.limits)).reset();
      this.#state = CHUNKED;
    } else if (framing === "close") this.#state = CLOSE;
    else if (framing === "tunnel") {
      out.push(END);
      this.#state = TUNNEL;
    } else this.#end(out, END);
    return end;
  }

  #trailerBytes(b: Uint8Array, i: number, out: Http1Event<H>[]): number {
    const sc = (this.#trailers ??= new HeadScanner(this.limits, false));
    const end = sc.scan(b, i, false);
    if (end < 0) {
      this.#acc.append(b, i, b.length);
      return b.length;
    }
    if (sc.count === 0) this.#end(out, END);
    else {
      let bytes: Uint8Array;
      if (this.#acc.length === 0) bytes = copyOf(b, i, end);
      else {
        this.#acc.append(b, i, end);
        bytes = this.#acc.view();
      }
      this.#end(out, { kind: "end", trailers: parseFields(new HeadText(bytes), sc, 0, null).headers });
    }
    this.#acc.length = 0;
    return end;
  }

  #end(out: Http1Event<H>[], e: Http1Event<H>): void {
    out.push(e);
    const head = this.#current;
    if (head !== null && this.holdsAfter(head)) this.#state = HELD;
    else this.#state = head?.keepAlive === false ? DONE : HEAD;
  }
}
