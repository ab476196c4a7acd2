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
 * A request without a body (GET opening a stream, DELETE ending a session) passes unchanged.
 *
 * Responses (McpResponse): `text/event-stream` is re-framed chunked and passed event by event as
 * each arrives, each event's data through the gate (a tools/list result filtered, an event that
 * does not parse dropped); a 2xx `application/json` body is read whole (at most MAX_MCP_BODY)
 * and passed through the gate, and one that does not parse, or is too large, is replaced by a
 * JSON-RPC error answering the request; anything else passes as sent.
 */
import { DEFAULT_MESSAGE_LIMITS, INTERNAL_ERROR, type JsonRpcId, jsonRpcError, type McpGate, serializeEvent, SseParser } from "../../mcp/index.ts";
import { encodeChunk, lastChunk, serializeResponseHead, type Header, type RequestHead, type ResponseHead } from "../../http1/index.ts";

export const MAX_MCP_BODY = DEFAULT_MESSAGE_LIMITS.maxBytes;

const encoder = new TextEncoder();
/** Refusals the client gets as the answer to its call (HTTP 200); any other is 400. */
const ANSWERED = new Set(["tool_denied", "tool_not_allowed", "tool_changed", "mcp_duplicate_id", "mcp_too_many_pending"]);
const STATUS_TEXT: Record<number, string> = { 200: "OK", 400: "Bad Request", 413: "Content Too Large" };

export type McpRequestOutcome =
  /** `headers` with the body's framing as Content-Length; `id` the request's, for a JSON answer that must be replaced. */
  | { readonly forward: true; readonly headers: readonly Header[]; readonly body: Uint8Array; readonly id: JsonRpcId | null; readonly tool: string | null }
  | { readonly forward: false; readonly status: number; readonly reason: string; readonly response: Uint8Array };

/** A request body read whole, up to MAX_MCP_BODY. */
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
    this.chunks.push(bytes.slice());
  }

  bytes(): Uint8Array {
    if (this.chunks.length === 1) return this.chunks[0]!;
    const out = new Uint8Array(this.size);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

/** A whole HTTP/1.1 response carrying `body` as JSON. */
export function jsonResponse(status: number, body: unknown, keepAlive: boolean): Uint8Array {
  const bytes = encoder.encode(JSON.stringify(body));
  const head = serializeResponseHead({ status, reason: STATUS_TEXT[status] ?? "Error", headers: [["content-type", "application/json"], ["content-length", String(bytes.length)], ...(keepAlive ? [] : [["connection", "close"] as Header])] });
  const out = new Uint8Array(head.length + bytes.length);
  out.set(head);
  out.set(bytes, head.length);
  return out;
}

function withoutFraming(headers: readonly Header[]): Header[] {
  return headers.filter(([n]) => {
    const l = n.toLowerCase();
    return l !== "content-length" && l !== "transfer-encoding";
  });
}

/**
 * Decides a request whose body (`body`, null when it has none) was read whole. `headers` are the
 * ones the carrier would send (already rewritten by it); the gate checks the Mcp-* ones as sent.
 */
export async function gateRequest(gate: McpGate, head: RequestHead, headers: readonly Header[], body: BodyBuffer | null): Promise<McpRequestOutcome> {
  if (body === null) return { forward: true, headers, body: new Uint8Array(0), id: null, tool: null };
  if (body.over) {
    const answer = jsonRpcError(null, -32600, `tidegate: a request body of over ${MAX_MCP_BODY} bytes`);
    return { forward: false, status: 413, reason: "mcp_too_large", response: jsonResponse(413, answer, false) };
  }
  const bytes = body.bytes();
  const source = { get: (n: string) => head.headers.get(n), forEach: (cb: (v: string, n: string) => void) => head.headers.entries.forEach(([n, v]) => cb(v, n)) };
  const v = await gate.fromClient(bytes, source);
  if (!v.pass) {
    const status = ANSWERED.has(v.reason) ? 200 : 400;
    return { forward: false, status, reason: v.reason, response: jsonResponse(status, v.answer ?? jsonRpcError(null, -32600, "tidegate: refused"), head.keepAlive) };
  }
  const m = v.message;
  const id = m.kind === "request" ? m.id : null;
  const tool = m.kind === "request" && m.method === "tools/call" && typeof m.params?.name === "string" ? m.params.name : null;
  return { forward: true, headers: [...withoutFraming(headers), ["content-length", String(bytes.length)]], body: bytes, id, tool };
}

type Mode = "pass" | "sse" | "json";

/**
 * One response through the gate. `emit` gets the bytes for the client, in order, head first;
 * `end` resolves once the last of them was emitted.
 */
export class McpResponse {
  private readonly mode: Mode;
  private chain: Promise<void> = Promise.resolve();
  private readonly sse: SseParser | null = null;
  private readonly json: BodyBuffer | null = null;
  /** An SSE event over the limit came: the rest of the stream is dropped. */
  private broken = false;

  constructor(
    private readonly gate: McpGate,
    readonly head: ResponseHead,
    /** The id of the request answered (a JSON answer that cannot pass is replaced by an error for it). */
    private readonly requestId: JsonRpcId | null,
    private readonly emit: (bytes: Uint8Array) => void,
  ) {
    const type = (head.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
    const hasBody = head.framing === "length" || head.framing === "chunked" || head.framing === "close";
    this.mode = !hasBody || head.status < 200 || head.status >= 300 ? "pass" : type === "text/event-stream" ? "sse" : type === "application/json" ? "json" : "pass";
    if (this.mode === "sse") {
      this.sse = new SseParser();
      this.emitHead([...withoutFraming(head.headers.entries), ["transfer-encoding", "chunked"]]);
    } else if (this.mode === "json") {
      this.json = new BodyBuffer();
    } else {
      this.emitHead(head.headers.entries);
    }
  }

  /** The body will be re-chunked (sse, or a chunked body passed as is). */
  private get chunked(): boolean {
    return this.mode === "sse" || (this.mode === "pass" && this.head.framing === "chunked");
  }

  private emitHead(headers: readonly Header[]): void {
    this.emit(serializeResponseHead({ status: this.head.status, reason: this.head.reason, version: "HTTP/1.1", headers }));
  }

  body(bytes: Uint8Array): void {
    if (this.mode === "json") return this.json!.push(bytes);
    if (this.mode === "pass") return this.emit(this.chunked ? encodeChunk(bytes) : bytes.slice());
    if (this.broken) return;
    let events;
    try {
      events = this.sse!.push(bytes.slice());
    } catch {
      this.broken = true; // an event over the limit: nothing more of this stream passes
      return;
    }
    if (events.length > 0) this.chain = this.chain.then(() => this.events(events));
  }

  private async events(events: ReturnType<SseParser["push"]>): Promise<void> {
    for (const e of events) {
      if (!e.dispatch || e.data === "") {
        this.emit(encodeChunk(e.raw));
        continue;
      }
      const v = await this.gate.fromServer(e.data);
      if (v.kind === "same") this.emit(encodeChunk(e.raw));
      else if (v.kind === "replace") this.emit(encodeChunk(serializeEvent({ type: e.type, id: e.id, retry: e.retry, data: v.text })));
      // invalid: dropped (a client could read it otherwise than the gate did)
    }
  }

  /** The response ended (`trailers` of a chunked one). */
  end(trailers: Iterable<Header> = []): Promise<void> {
    this.chain = this.chain.then(async () => {
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
    return this.chain;
  }

  private async endJson(): Promise<void> {
    const buf = this.json!;
    let body: Uint8Array;
    if (buf.over) body = encoder.encode(JSON.stringify(jsonRpcError(this.requestId, INTERNAL_ERROR, `tidegate: the server's answer is over ${MAX_MCP_BODY} bytes`)));
    else {
      const bytes = buf.bytes();
      const v = await this.gate.fromServer(bytes);
      body = v.kind === "same" ? bytes : v.kind === "replace" ? encoder.encode(v.text) : encoder.encode(JSON.stringify(jsonRpcError(this.requestId, INTERNAL_ERROR, `tidegate: the server's answer is not a message tidegate can read (${v.error.code})`)));
    }
    this.emitHead([...withoutFraming(this.head.headers.entries), ["content-length", String(body.length)]]);
    if (body.length > 0) this.emit(body);
  }
}
