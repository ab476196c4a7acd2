/**
 * MCP over Streamable HTTP (2025-11-25, and 2026-07-28's Mcp-* headers) through the gate
 * (src/mcp/gate.ts), for any HTTP/1.1 carrier: an intercepted connection (exchange.ts) or an
 * inbound listener (relay.ts). The carrier parses; this decides and rewrites.
 *
 * Requests: one with a body (a POST of one JSON-RPC message) is read whole, at most
 * MAX_MCP_BODY bytes (`mcp_too_large` answered 413), then given to the gate with its headers:
 * - passed: forwarded with its body unchanged, framed with Content-Length;
 * - refused by policy (a tool denied, not allowed, or changed since pinned) or for a duplicate or
 *   one-too-many request id: answered 200 with the JSON-RPC error, so the client reads it as the
 *   call's answer; the connection stays open;
 * - refused because it is not a message the gate can read (parse error, batch, wrong shape,
 *   Mcp-* header mismatch): answered 400 with the JSON-RPC error.
 * A request without a body (GET opening a stream, DELETE ending a session) passes unchanged; a
 * GET's answer, the session's stream, also carries list-changed notifications (McpResponse).
 *
 * Every forwarded request asks for `accept-encoding: identity`.
 *
 * Responses (McpResponse): a 2xx answer with a body must be exactly one of these (answerMode), or
 * it is replaced by a JSON-RPC error (-32603) answering the request (502 when none is known):
 * - `text/event-stream`: re-framed chunked and passed event by event as each arrives, each event's
 *   data through the gate (a tools/list result filtered; an event that does not parse dropped, and
 *   the request it may have answered given an error instead); an event some client would cut
 *   into other lines than the parser did (a lone CR, U+2028: sse.ts plainBlock) is sent again
 *   from its fields, or dropped when it has no data or such a character in its type or id;
 * - `application/json`: read whole (at most MAX_MCP_BODY) and passed through the gate; one that
 *   does not parse, or is too large, is replaced by the error.
 * Compressed answers, several Content-Types, a charset other than UTF-8 and any other type are
 * refused that way, and so is a redirect (3xx with a Location, which a client follows to an
 * answer the gate never reads). Answers without a body, 1xx and other non-2xx pass as sent. When
 * an answer ends, the request it was for waits no more (gate.settle): a stream that ended without
 * its JSON-RPC answer does not hold the conversation's pending slots.
 */
import { DEFAULT_MESSAGE_LIMITS, escapeBreaks, hasOtherBreak, INTERNAL_ERROR, type JsonRpcErrorResponse, type JsonRpcId, jsonRpcError, type ListsSeen, type McpGate, plainBlock, POLICY_DENIED, serializeEvent, SseParser } from "../../mcp/index.ts";
import { encodeChunk, lastChunk, serializeResponseHead, wholeResponse, type Header, type RequestHead, type ResponseHead } from "../../http1/index.ts";
import { copyOf } from "../../http1/bytes.ts";

export const MAX_MCP_BODY = DEFAULT_MESSAGE_LIMITS.maxBytes;
/** How often a session's stream looks for list changes to tell its client of (McpResponse, `stream`). */
export const ANNOUNCE_MS = 1000;

const encoder = new TextEncoder();
/** Refusals the client gets as the answer to its call (HTTP 200); any other is 400. */
/**
 * Refusals answered as the call's own error with status 200, so a client raises it for that call
 * and the session goes on: every policy refusal (-32001: a tool, resource or prompt the rule
 * refuses, a changed tool, a URI it cannot decide) and these two of the conversation's bounds.
 * Anything else (a message that does not parse or is not one) is 400.
 */
const ANSWERED = new Set(["mcp_duplicate_id", "mcp_too_many_pending"]);
const answeredHere = (reason: string, answer: JsonRpcErrorResponse | null) => ANSWERED.has(reason) || answer?.error.code === POLICY_DENIED;

export type McpRequestOutcome =
  /**
   * `headers` with the body's framing as Content-Length; `id` the request's, for a JSON answer that
   * must be replaced; `stream`, for a GET (the client's stream for the server's messages), the
   * record of its session's lists, which the answer announces changes from (McpResponse).
   */
  | { readonly forward: true; readonly headers: readonly Header[]; readonly body: Uint8Array; readonly id: JsonRpcId | null; readonly tool: string | null; readonly stream: ListsSeen | null }
  /** `close`: the carrier ends the connection after `response` (its Connection: close says so). */
  | { readonly forward: false; readonly status: number; readonly reason: string; readonly response: Uint8Array; readonly close: boolean };

/** A request body read whole, up to MAX_MCP_BODY. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let size = 0;
  for (const p of parts) size += p.length;
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export class BodyBuffer {
  private readonly chunks: Uint8Array[] = [];
  size = 0;
  over = false;

  push(bytes: Uint8Array): void {
    this.size += bytes.length;
    if (this.size > MAX_MCP_BODY) {
      this.over = true;
      this.chunks.length = 0;
      return;
    }
    this.chunks.push(copyOf(bytes));
  }

  bytes(): Uint8Array {
    return this.chunks.length === 1 ? this.chunks[0]! : concatBytes(this.chunks);
  }
}

/** A whole HTTP/1.1 response carrying `body` as JSON. */
export function jsonResponse(status: number, body: unknown, keepAlive: boolean): Uint8Array {
  return wholeResponse(status, "application/json", encoder.encode(JSON.stringify(body)), keepAlive);
}

function withoutFraming(headers: readonly Header[]): Header[] {
  return headers.filter(([n]) => {
    const l = n.toLowerCase();
    return l !== "content-length" && l !== "transfer-encoding";
  });
}

/** A request's headers asking for an answer the gate can read: no compression (answerMode refuses it). */
function identityOnly(headers: readonly Header[]): Header[] {
  return [...headers.filter(([n]) => n.toLowerCase() !== "accept-encoding"), ["accept-encoding", "identity"]];
}

/**
 * Decides a request whose body (`body`, null when it has none) was read whole. `headers` are the
 * ones the carrier would send (already rewritten by it); the gate checks the Mcp-* ones as sent.
 */
export async function gateRequest(gate: McpGate, head: RequestHead, headers: readonly Header[], body: BodyBuffer | null): Promise<McpRequestOutcome> {
  const noMessage = body === null || (body.size === 0 && head.method !== "POST");
  // A conversation no rule lets go on: a request without a message (the GET of its event stream, a DELETE) is refused too.
  const closed = noMessage ? gate.closedNow() : null;
  if (closed !== null) return { forward: false, status: 403, reason: closed.reason, response: jsonResponse(403, jsonRpcError(null, POLICY_DENIED, closed.message), false), close: true };
  const source = { get: (n: string) => head.headers.get(n), forEach: (cb: (v: string, n: string) => void) => head.headers.entries.forEach(([n, v]) => cb(v, n)) };
  // No body, or an empty one on a method that carries no message (a DELETE with Content-Length: 0).
  if (body === null || noMessage) return { forward: true, headers: identityOnly(headers), body: new Uint8Array(0), id: null, tool: null, stream: head.method === "GET" ? gate.lists(source) : null };
  if (body.over) {
    const answer = jsonRpcError(null, -32600, `tidegate: a request body of over ${MAX_MCP_BODY} bytes`);
    return { forward: false, status: 413, reason: "mcp_too_large", response: jsonResponse(413, answer, false), close: true };
  }
  const bytes = body.bytes();
  const v = await gate.fromClient(bytes, source);
  if (!v.pass) {
    const status = answeredHere(v.reason, v.answer) ? 200 : 400;
    const close = v.close === true || !head.keepAlive;
    return { forward: false, status, reason: v.reason, response: jsonResponse(status, v.answer ?? jsonRpcError(null, -32600, "tidegate: refused"), !close), close };
  }
  const m = v.message;
  const id = m.kind === "request" ? m.id : null;
  const tool = m.kind === "request" && m.method === "tools/call" && typeof m.params?.name === "string" ? m.params.name : null;
  return { forward: true, headers: [...withoutFraming(identityOnly(headers)), ["content-length", String(bytes.length)]], body: bytes, id, tool, stream: null };
}

type Mode = "pass" | "sse" | "json" | "refuse";

/**
 * How a 2xx answer with a body is read: `sse` or `json`, or why neither (so it cannot pass): the
 * media type exactly text/event-stream or application/json (any case), at most one Content-Type,
 * charset (when given) utf-8, no Content-Encoding but identity. Anything else could carry a
 * message the client reads and the gate did not (a gzip stream, a JSON body under another type,
 * UTF-16).
 */
export function answerMode(head: ResponseHead): { mode: "sse" | "json" } | { mode: "refuse"; why: string } {
  const types = head.headers.getAll("content-type");
  if (types.length !== 1) return { mode: "refuse", why: types.length === 0 ? "no Content-Type" : "more than one Content-Type" };
  const encodings = head.headers.getAll("content-encoding").flatMap((v) => v.split(",")).map((v) => v.trim().toLowerCase()).filter((v) => v !== "");
  if (encodings.some((e) => e !== "identity")) return { mode: "refuse", why: `Content-Encoding ${encodings.join(", ")}` };
  const [media, ...params] = types[0]!.split(";").map((p) => p.trim());
  const type = media!.toLowerCase();
  for (const p of params) {
    const eq = p.indexOf("=");
    const name = p.slice(0, eq < 0 ? p.length : eq).trim().toLowerCase();
    const value = eq < 0 ? "" : p.slice(eq + 1).trim().replace(/^"(.*)"$/, "$1").toLowerCase();
    if (name === "charset" && value !== "utf-8" && value !== "utf8") return { mode: "refuse", why: `charset ${value}` };
  }
  if (type === "text/event-stream") return { mode: "sse" };
  if (type === "application/json") return { mode: "json" };
  return { mode: "refuse", why: `Content-Type ${type.slice(0, 64)}` };
}

/** What a session's stream announces from, and whom it tells how many it sent (McpResponse). */
export interface SessionStream {
  /** The session's record of its lists (gateRequest's `stream`). */
  readonly seen: ListsSeen;
  /** `count` list-changed notifications went to the client (the carrier's `lists_announced`). */
  told(count: number): void;
  /** Default ANNOUNCE_MS. */
  readonly everyMs?: number;
}

/**
 * One response through the gate. `emit` gets the bytes for the client, in order, head first;
 * `end` resolves once the last of them was emitted.
 *
 * Given `stream` (the answer to a session's GET: gateRequest's `stream`) and answered as SSE, it
 * also tells the client of list changes: every ANNOUNCE_MS it asks the gate for the list-changed
 * notifications of the session's record (gate.ts `listsChanged`) and sends each as an event of its
 * own, between the server's events, until the answer ends or the carrier `stop`s it. The client
 * then lists again, whichever connection carries that.
 */
export class McpResponse {
  private readonly mode: Mode;
  private chain: Promise<void> = Promise.resolve();
  private readonly sse: SseParser | null = null;
  private readonly json: BodyBuffer | null = null;
  /** An SSE event over the limit came: the rest of the stream is dropped. */
  private broken = false;
  /** Bytes for the client gathered in this tick: one write (one TLS record) instead of one per part. */
  private out: Uint8Array[] = [];
  private outScheduled = false;

  private emit(bytes: Uint8Array): void {
    this.out.push(bytes);
    if (this.outScheduled) return;
    this.outScheduled = true;
    queueMicrotask(() => this.flush());
  }

  /** SSE events of one read still going through the gate: what they produce goes out with them. */
  private holding = 0;

  private flush(): void {
    this.outScheduled = false;
    if (this.holding > 0) return; // the batch's end flushes
    const parts = this.out;
    if (parts.length === 0) return;
    this.out = [];
    this.write(parts.length === 1 ? parts[0]! : concatBytes(parts));
  }

  /** Mode refuse: why the answer cannot pass, and how much body came (none: it passes, empty, unless a redirect). */
  private readonly refusal: string | null = null;
  private readonly redirect: boolean;
  private refusedBytes = 0;

  constructor(
    private readonly gate: McpGate,
    readonly head: ResponseHead,
    /** The id of the request answered (a JSON answer that cannot pass is replaced by an error for it). */
    private readonly requestId: JsonRpcId | null,
    private readonly write: (bytes: Uint8Array) => void,
    /** When this answers a session's stream: what it announces from. */
    session: SessionStream | null = null,
  ) {
    this.stream = session?.seen ?? null;
    const hasBody = (head.framing === "length" && head.contentLength !== 0) || head.framing === "chunked" || head.framing === "close";
    // A redirect is followed by the client (fetch; httpx as the Python SDK sets it up) with the
    // same request, and its answer read from where the gate does not see it.
    this.redirect = head.status >= 300 && head.status < 400 && head.headers.getAll("location").length > 0;
    const read = this.redirect ? { mode: "refuse" as const, why: "a redirect" } : !hasBody || head.status < 200 || head.status >= 300 ? { mode: "pass" as const } : answerMode(head);
    this.mode = read.mode;
    if (read.mode === "refuse") this.refusal = read.why;
    if (this.mode === "sse") {
      this.sse = new SseParser();
      this.emitHead([...withoutFraming(head.headers.entries), ["transfer-encoding", "chunked"]]);
      if (session !== null) this.announcer = setInterval(() => this.announce(session), session.everyMs ?? ANNOUNCE_MS);
    } else if (this.mode === "json") {
      this.json = new BodyBuffer();
    } else if (this.mode === "pass") {
      this.emitHead(head.headers.entries);
    }
  }

  /** The session's record of its lists, for list results on its stream that answer no request of this gate. */
  private readonly stream: ListsSeen | null;
  private announcer: ReturnType<typeof setInterval> | null = null;

  /** The session's list-changed notifications, each an event, after the server's events already on their way. */
  private announce(session: SessionStream): void {
    if (this.ended !== null || this.broken) return this.stop();
    const methods = this.gate.listsChanged(session.seen);
    if (methods.length === 0) return;
    session.told(methods.length);
    this.chain = this.chain.then(() => {
      for (const method of methods) this.emit(encodeChunk(serializeEvent({ data: JSON.stringify({ jsonrpc: "2.0", method }) })));
    });
  }

  /** No more list-changed notifications (the answer ended, or the connection went). */
  stop(): void {
    if (this.announcer !== null) clearInterval(this.announcer);
    this.announcer = null;
  }

  /** The body will be re-chunked (sse, or a chunked body passed as is). */
  private get chunked(): boolean {
    return this.mode === "sse" || (this.mode === "pass" && this.head.framing === "chunked");
  }

  private emitHead(headers: readonly Header[]): void {
    this.emit(serializeResponseHead({ status: this.head.status, reason: this.head.reason, version: "HTTP/1.1", headers }));
  }

  body(bytes: Uint8Array): void {
    if (this.mode === "refuse") {
      this.refusedBytes += bytes.length;
      return;
    }
    if (this.mode === "json") return this.json!.push(bytes);
    if (this.mode === "pass") return this.emit(this.chunked ? encodeChunk(bytes) : copyOf(bytes));
    if (this.broken) return;
    let events;
    try {
      events = this.sse!.push(copyOf(bytes));
    } catch {
      this.broken = true; // an event over the limit: nothing more of this stream passes
      return;
    }
    if (events.length === 0) return;
    this.holding += 1;
    this.chain = this.chain
      .then(() => this.events(events))
      .catch(() => void (this.broken = true)) // a fault of ours: nothing more of this stream passes
      .finally(() => {
        this.holding -= 1;
        this.flush();
      });
  }

  private async events(events: ReturnType<SseParser["push"]>): Promise<void> {
    for (const e of events) {
      // A block some client would cut into other lines than the parser did (a lone CR, U+2028:
      // sse.ts plainBlock) never passes as it came: what that client read in it the gate did not.
      const plain = plainBlock(e.raw);
      if (!e.dispatch || e.data === "") {
        if (plain) this.emit(encodeChunk(e.raw)); // else dropped: nothing in it for the client
        continue;
      }
      const v = await this.gate.fromServer(e.data, this.stream ?? undefined);
      const why = v.kind === "invalid" ? v.error.code : hasOtherBreak(e.type) || (e.id !== null && hasOtherBreak(e.id)) ? "a line break in its type or id" : null;
      if (v.kind === "same" && plain) this.emit(encodeChunk(e.raw));
      else if (v.kind !== "invalid" && why === null) this.emit(encodeChunk(serializeEvent({ type: e.type, id: e.id, retry: e.retry, data: escapeBreaks(v.kind === "same" ? e.data : v.text) })));
      else if (this.requestId !== null && this.gate.waiting(this.requestId)) {
        // Not passed (a client could read it otherwise than the gate did); the request it may have
        // answered gets an error rather than a wait until the client's timeout.
        this.gate.settle(this.requestId);
        this.emit(encodeChunk(serializeEvent({ data: JSON.stringify(jsonRpcError(this.requestId, INTERNAL_ERROR, `tidegate: the server sent an event tidegate cannot read (${why})`)) })));
      }
    }
  }

  private ended: Promise<void> | null = null;

  /** The response ended (`trailers` of a chunked one). Once: a second call (the backend closing after the end) adds nothing. */
  end(trailers: Iterable<Header> = []): Promise<void> {
    if (this.ended !== null) return this.ended;
    this.stop();
    this.chain = this.chain.then(async () => {
      if (this.mode === "refuse") return this.endRefused();
      if (this.mode === "json") return this.endJson();
      if (this.mode === "sse" && !this.broken) {
        try {
          this.sse!.finish(); // an event without its blank line is never dispatched: dropped
        } catch {
          // a block over the limit: dropped likewise
        }
      }
      if (this.chunked) this.emit(lastChunk(trailers));
    });
    // The answer ended: its request waits no more (a JSON-RPC answer came, or none will on this stream).
    this.chain = this.chain.catch(() => void (this.broken = true)).then(() => {
      if (this.requestId !== null) this.gate.settle(this.requestId);
      this.flush(); // all of it written before the carrier goes on
    });
    this.ended = this.chain;
    return this.chain;
  }

  /** A 2xx answer tidegate cannot read is replaced by an error: the request's, else a 502. */
  private endRefused(): void {
    // A body that turned out empty (a 202 sent chunked) carries nothing to check.
    if (this.refusedBytes === 0 && !this.redirect) return this.emitHead([...withoutFraming(this.head.headers.entries), ["content-length", "0"]]);
    const why = `tidegate: the server's answer cannot be checked (${this.refusal})`;
    this.emit(jsonResponse(this.requestId !== null ? 200 : 502, jsonRpcError(this.requestId, INTERNAL_ERROR, why), this.head.keepAlive));
  }

  private async endJson(): Promise<void> {
    const buf = this.json!;
    let body: Uint8Array;
    if (buf.over) body = encoder.encode(JSON.stringify(jsonRpcError(this.requestId, INTERNAL_ERROR, `tidegate: the server's answer is over ${MAX_MCP_BODY} bytes`)));
    else {
      const bytes = buf.bytes();
      const v = await this.gate.fromServer(bytes, this.stream ?? undefined);
      body = v.kind === "same" ? bytes : v.kind === "replace" ? encoder.encode(v.text) : encoder.encode(JSON.stringify(jsonRpcError(this.requestId, INTERNAL_ERROR, `tidegate: the server's answer is not a message tidegate can read (${v.error.code})`)));
    }
    this.emitHead([...withoutFraming(this.head.headers.entries), ["content-length", String(body.length)]]);
    if (body.length > 0) this.emit(body);
  }
}
