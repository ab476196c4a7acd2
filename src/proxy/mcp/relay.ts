/**
 * MCP over HTTP/1.1 between an inbound listener's client and its backend (`inbound[].mcp`): the
 * listener's splice still moves the bytes (backpressure, FIN); this sits on both directions,
 * parses requests and responses (src/http1/), and passes each through the gate
 * (http-filter.ts): a refused call is answered here and never reaches the backend.
 *
 * - Requests are handled one at a time: the next is not read from the parser until the answer
 *   to the one before has ended, so answers cannot be reordered; bytes a client sends ahead are
 *   held, at most MAX_HELD, else the connection is refused (`mcp_too_much_ahead`).
 * - Every request's headers pass through `rewrite` (the listener adds `x-forwarded-client-cert`
 *   there when the rule asks).
 * - The answer to a GET (the session's stream) also tells the client of list changes, from the
 *   record of lists its session's connections share (http-filter.ts McpResponse, `stream`);
 *   `announced` counts them, for the connection's conn_close (`lists_announced`).
 * - Timeouts (`proxy.header_timeout`, `proxy.first_byte_timeout` and `proxy.idle_timeout`,
 *   default HEADER_MS, FIRST_BYTE_MS and IDLE_MS): a request head must be whole within the first
 *   (the connection's first from the relay's start, each later one from its first byte; else 408
 *   `header_timeout`, head-deadline.ts); an answer's head must come within the second of its request (else 504
 *   `backend_first_byte_timeout`); a connection with no byte either way for the third is closed
 *   (`idle_timeout`); every byte, so every SSE event, starts that over, and a call's whole
 *   duration has no cap.
 * - Refused, answered with the status named and the connection closed: a stream that breaks
 *   HTTP/1.1 (400, the parser's code), CONNECT or an upgrade (403, `upgrade_refused`), an answer
 *   from the backend that breaks HTTP/1.1 (502, `backend_bad_answer`) or that ends before it
 *   began (502, `backend_closed`).
 */
import { RequestParser, ResponseParser, serializeRequestHead, refusalResponse, type Header, type RequestEvent, type RequestHead, type ResponseEvent } from "../../http1/index.ts";
import type { ListsSeen, McpGate } from "../../mcp/index.ts";
import { BodyBuffer, concatBytes, gateRequest, MAX_MCP_BODY, McpResponse } from "./http-filter.ts";
import { HeadDeadline } from "../head-deadline.ts";
import { copyOf } from "../../http1/bytes.ts";

/** Client bytes (heads and bodies) held while an answer is awaited (pipelined requests), at most. */
export const MAX_HELD = MAX_MCP_BODY + 64 * 1024;
/** From a request forwarded to its answer's head (`backend_first_byte_timeout`, 504). */
export const FIRST_BYTE_MS = 30_000;
/** Without a byte either way (an SSE event counts; `idle_timeout`): a call that keeps reporting is never cut off. */
export const IDLE_MS = 300_000;
/** For a request head to be whole (`header_timeout`, 408). */
export const HEADER_MS = 30_000;

export interface RelayTimeouts {
  readonly firstByteMs: number;
  readonly idleMs: number;
  /** Default HEADER_MS. */
  readonly headerMs?: number;
}

export interface RelayOut {
  toBackend(bytes: Uint8Array): void;
  toClient(bytes: Uint8Array): void;
  /** No more requests go to the backend. */
  endBackend(): void;
  /** Nothing more goes to the client. */
  endClient(): void;
}

interface Current {
  readonly head: RequestHead;
  readonly body: BodyBuffer | null;
  id: string | number | null;
  /** The session's record of its lists, when this is its stream (gateRequest's `stream`). */
  stream: ListsSeen | null;
  response: McpResponse | null;
}


export class McpRelay {
  private readonly requests = new RequestParser();
  private readonly responses = new ResponseParser();
  private readonly queue: RequestEvent[] = [];
  private held = 0;
  private current: Current | null = null;
  /** A request was forwarded and its answer has not ended. */
  private waiting = false;
  private busy = false;
  private clientEnded = false;
  private done = false;
  /** Requests forwarded or answered here. */
  count = 0;
  /** List-changed notifications this connection sent the client on its session's stream (its conn_close's `lists_announced`). */
  announced = 0;
  /** Why the relay ended the connection, for its conn_close; null while it did not. */
  refused: { reason: string; detail: string } | null = null;

  private firstByte: ReturnType<typeof setTimeout> | null = null;
  private idle: ReturnType<typeof setTimeout> | null = null;
  private readonly head: HeadDeadline;

  constructor(
    private readonly gate: McpGate,
    private readonly rewrite: (head: RequestHead) => readonly Header[],
    private readonly out: RelayOut,
    private readonly timeouts: RelayTimeouts = { firstByteMs: FIRST_BYTE_MS, idleMs: IDLE_MS },
  ) {
    this.armIdle(timeouts.idleMs);
    this.head = new HeadDeadline(timeouts.headerMs ?? HEADER_MS, () => {
      if (this.awaitingHead()) this.refuse(408, "header_timeout", this.head.fields().detail);
    });
    this.head.update(true);
  }

  /** No request being gated or answered (`pump` leaves none queued when it is neither busy nor waiting), and no request yet or the next one's first byte came. */
  private awaitingHead(): boolean {
    if (this.done || this.current !== null || this.waiting || this.busy) return false;
    return this.requests.awaitingHead && (this.count === 0 || this.requests.inHead);
  }

  /** When a byte last moved either way: the idle timer, when it fires, waits for what is left. */
  private lastByte = performance.now();

  private touch(): void {
    this.lastByte = performance.now();
  }

  private armIdle(ms: number): void {
    this.idle = setTimeout(() => {
      const left = this.timeouts.idleMs - (performance.now() - this.lastByte);
      if (left > 0) return this.armIdle(left);
      this.abort("idle_timeout", `no byte either way for ${this.timeouts.idleMs} ms`);
    }, ms);
  }

  private stopTimers(): void {
    this.current?.response?.stop();
    for (const t of [this.firstByte, this.idle]) if (t !== null) clearTimeout(t);
    this.firstByte = this.idle = null;
    this.head.stop();
  }

  clientData(chunk: Uint8Array): void {
    if (this.done) return;
    this.touch();
    for (const e of this.requests.push(chunk)) this.hold(e);
    if (this.held > MAX_HELD) return this.refuse(400, "mcp_too_much_ahead", `over ${MAX_HELD} bytes sent ahead of an answer`);
    void this.pump();
    this.head.update(this.awaitingHead());
  }

  clientEnd(): void {
    if (this.done) return;
    this.clientEnded = true;
    for (const e of this.requests.finish()) this.hold(e);
    void this.pump();
  }

  private hold(e: RequestEvent): void {
    // a head counts too: a stream of bodiless requests behind a pending answer would else grow without bound
    if (e.kind === "head") this.held += e.head.headLength;
    if (e.kind === "body") {
      this.held += e.bytes.length;
      this.queue.push({ kind: "body", bytes: copyOf(e.bytes) });
    } else this.queue.push(e);
  }

  private async pump(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      while (!this.done && !this.waiting && this.queue.length > 0) await this.onRequest(this.queue.shift()!);
      if (!this.done && !this.waiting && this.queue.length === 0 && this.clientEnded && this.current === null) this.close();
    } catch (e) {
      this.refuse(502, "internal_error", e instanceof Error ? e.message : String(e));
    } finally {
      this.busy = false;
      this.head.update(this.awaitingHead());
    }
  }

  private async onRequest(e: RequestEvent): Promise<void> {
    if (e.kind === "error") return this.refuse(400, e.error.code, e.error.message);
    if (e.kind === "tunnel") return this.refuse(403, "upgrade_refused", "bytes after a protocol switch");
    if (e.kind === "head") {
      const h = e.head;
      this.held -= h.headLength;
      if (h.method === "CONNECT" || h.upgrade.length > 0) return this.refuse(403, "upgrade_refused", `${h.method} with Upgrade: ${h.upgrade.join(", ") || "-"}`);
      this.current = { head: h, body: h.framing === "none" ? null : new BodyBuffer(), id: null, stream: null, response: null };
      return;
    }
    const c = this.current;
    if (c === null) return;
    if (e.kind === "body") {
      this.held -= e.bytes.length;
      return c.body?.push(e.bytes);
    }
    const out = await gateRequest(this.gate, c.head, this.rewrite(c.head), c.body);
    if (this.done) return;
    this.count += 1;
    if (!out.forward) {
      this.out.toClient(out.response);
      this.current = null;
      if (out.close) {
        const why = this.gate.closedNow(); // no rule lets the conversation go on: the connection's record says so
        if (why !== null) this.refused ??= { reason: why.reason, detail: why.message };
        this.close();
      }
      return;
    }
    c.id = out.id;
    c.stream = out.stream;
    this.waiting = true;
    this.firstByte = setTimeout(() => {
      if (this.current === c && c.response === null) this.refuse(504, "backend_first_byte_timeout", `no answer from the backend within ${this.timeouts.firstByteMs} ms`);
    }, this.timeouts.firstByteMs);
    this.responses.expect(c.head.method);
    const head = serializeRequestHead({ method: c.head.method, target: c.head.target, version: c.head.version, headers: out.headers });
    this.out.toBackend(out.body.length > 0 ? concatBytes([head, out.body]) : head); // one write
  }

  backendData(chunk: Uint8Array): void {
    if (this.done) return;
    this.touch();
    for (const e of this.responses.push(chunk)) this.onResponse(e);
  }

  backendEnd(): void {
    if (this.done) return;
    for (const e of this.responses.finish()) this.onResponse(e);
    if (this.done) return;
    const c = this.current;
    if (c !== null && c.response === null && this.waiting) return this.refuse(502, "backend_closed", "the backend closed before it answered");
    // An answer still being passed through the gate ends the client when it is through.
    if (c?.response != null) void c.response.end().then(() => this.close());
    else this.close();
  }

  private onResponse(e: ResponseEvent): void {
    const c = this.current;
    if (e.kind === "error" || e.kind === "tunnel" || c === null) {
      if (c !== null && c.response === null) return this.refuse(502, "backend_bad_answer", e.kind === "error" ? e.error.code : "an answer nobody asked for");
      return this.abort("backend_bad_answer", e.kind === "error" ? e.error.code : "an answer nobody asked for");
    }
    if (e.kind === "head") {
      if (this.firstByte !== null) clearTimeout(this.firstByte);
      this.firstByte = null;
      c.response = new McpResponse(this.gate, e.head, c.id, (b) => this.out.toClient(b), c.stream === null ? null : { seen: c.stream, told: (n) => void (this.announced += n) });
      return;
    }
    const res = c.response;
    if (res === null) return;
    if (e.kind === "body") return res.body(e.bytes);
    const final = res.head.status >= 200;
    const keep = res.head.keepAlive;
    void res.end(e.trailers).then(() => {
      if (this.done || this.current !== c) return;
      if (!final) {
        c.response = null;
        return;
      }
      this.current = null;
      this.waiting = false;
      if (!c.head.keepAlive || !keep) return this.close();
      void this.pump();
    });
  }

  /** Answers `status` here, then closes: nothing later is read. */
  private refuse(status: number, reason: string, detail: string): void {
    if (this.done) return;
    this.out.toClient(refusalResponse(status, reason));
    this.abort(reason, detail);
  }

  private abort(reason: string, detail: string): void {
    this.refused ??= { reason, detail };
    this.close(true);
  }

  /** A socket closed: nothing more moves; calls still waiting are awaited by their session for a resume, or logged without an answer (McpGate.close). */
  gone(): void {
    if (this.done) return;
    this.done = true;
    this.stopTimers();
    this.queue.length = 0;
    this.gate.close();
  }

  /** `final`: the client got the relay's own answer (a refusal, a timeout): a call still waiting will not be resumed (McpGate.close). */
  private close(final = false): void {
    if (this.done) return;
    this.done = true;
    this.stopTimers();
    this.queue.length = 0;
    this.gate.close(final);
    this.out.endBackend();
    this.out.endClient();
  }
}
