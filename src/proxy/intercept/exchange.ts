/**
 * The HTTP/1.1 exchange of one intercepted connection (issue 8): every request the workload sends,
 * pipelined or kept alive, is parsed (src/http1/), decided and rewritten (request-policy.ts), and
 * sent upstream on a TLS or mTLS leg (upstream.ts); the responses come back in order.
 *
 * Guarantees:
 * - every request is decided before any byte of it leaves: a refused one is answered here (its
 *   status and reason) and the connection is closed, so nothing after it is read as a request;
 * - requests are handled one at a time: the next one (already sent, pipelined) waits in the parser
 *   until the response to the one before has ended, so responses cannot be reordered;
 * - bodies stream both ways with backpressure (a full writer pauses the other side) and keep
 *   their framing: a fixed length is passed as is, a chunked body is re-chunked;
 * - a stream that breaks HTTP/1.1 (smuggling shapes, oversized heads: src/http1/errors.ts) is
 *   answered 400 with the parser's code, and the connection closed;
 * - an upstream leg is reused for the next request while the rule, address, port and name stay the
 *   same and both sides keep the connection alive; else a new one is opened.
 * One `http_request` log line per request: method, host, path (never the query), rule, status,
 * the secrets used (by name), body bytes each way, duration.
 */
import type { Socket } from "bun";
import { lastChunk, encodeChunk, RequestParser, ResponseParser, serializeRequestHead, serializeResponseHead, type RequestEvent, type RequestHead, type ResponseEvent, type ResponseHead } from "../../http1/index.ts";
import type { Logger } from "../../runtime/log.ts";
import { hex } from "../peer-tls.ts";
import type { Splice } from "../splice.ts";
import { openUpstream, type UpData, type UpstreamDeps, type UpstreamTls } from "../upstream.ts";
import { decideRequest, type RequestContext, type RequestDeps, type RequestVerdict } from "./request-policy.ts";

/** The workload's side: a Bun socket, or a TLS socket terminating its TLS. */
export interface ClientSide {
  /** False: the rest is queued; `drain` will be called. */
  write(bytes: Uint8Array): boolean;
  end(): void;
  pause(): void;
  resume(): void;
}

export interface ExchangeDeps extends RequestDeps {
  readonly upstream: UpstreamDeps;
  /** How a leg for this rule is wrapped (tls or mtls), or why it cannot be. */
  legTls(verdict: Extract<RequestVerdict, { ok: true }>): Promise<UpstreamTls | { refused: string; detail: string }>;
  readonly logger: Logger;
}

type Fields = Record<string, unknown>;
type Verdict = Extract<RequestVerdict, { ok: true }>;

interface Leg {
  readonly key: string;
  readonly socket: Socket<UpData>;
  readonly parser: ResponseParser;
  readonly peerId: string | null;
  readonly connId: string;
  queue: Uint8Array[];
  closed: boolean;
}

const STATUS_TEXT: Record<number, string> = { 400: "Bad Request", 403: "Forbidden", 421: "Misdirected Request", 502: "Bad Gateway", 503: "Service Unavailable" };

export class HttpExchange {
  private readonly requests = new RequestParser();
  private readonly events: RequestEvent[] = [];
  private busy = false;
  private waiting = false;
  private done = false;
  private clientEnded = false;
  private leg: Leg | null = null;
  private req: { head: RequestHead; verdict: Verdict; started: number; bytesUp: number; bytesDown: number; response: ResponseHead | null } | null = null;
  /** Requests answered (forwarded or refused), for the connection's line. */
  count = 0;

  constructor(
    private readonly client: ClientSide,
    private readonly ctx: RequestContext,
    private readonly base: Fields,
    private readonly deps: ExchangeDeps,
    private readonly onDone: (fields: Fields) => void,
  ) {}

  clientData(chunk: Uint8Array): void {
    if (this.done) return;
    for (const e of this.requests.push(chunk)) this.events.push(e.kind === "body" ? { kind: "body", bytes: e.bytes.slice() } : e);
    void this.pump();
  }

  clientEnd(): void {
    this.clientEnded = true;
    for (const e of this.requests.finish()) this.events.push(e);
    if (!this.waiting && !this.busy && this.events.length === 0) this.finish({ outcome: "closed" });
    else void this.pump();
  }

  clientClosed(): void {
    this.finish({ outcome: "client_gone" });
  }

  /** The client's writer has room again. */
  clientDrain(): void {
    this.leg?.socket.resume();
  }

  private async pump(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      while (!this.done && !this.waiting && this.events.length > 0) await this.onRequest(this.events.shift()!);
      if (!this.done && !this.waiting && this.events.length === 0 && this.clientEnded && this.req === null) this.finish({ outcome: "closed" });
    } catch (e) {
      this.refuse(502, "internal_error", e instanceof Error ? e.message : String(e));
    } finally {
      this.busy = false;
    }
  }

  private async onRequest(e: RequestEvent): Promise<void> {
    if (e.kind === "error") return this.refuse(400, e.error.code, e.error.message);
    if (e.kind === "tunnel") return this.refuse(403, "upgrade_refused", "bytes after a protocol switch");
    if (e.kind === "head") return this.begin(e.head);
    const r = this.req;
    const leg = this.leg;
    if (r === null || leg === null) return;
    if (e.kind === "body") {
      r.bytesUp += e.bytes.length;
      this.send(leg, r.head.framing === "chunked" ? encodeChunk(e.bytes) : e.bytes);
    } else {
      if (r.head.framing === "chunked") this.send(leg, lastChunk(e.trailers));
      this.waiting = true;
    }
  }

  private async begin(head: RequestHead): Promise<void> {
    const started = performance.now();
    const verdict = await decideRequest(this.ctx, head, this.deps);
    if (!verdict.ok) {
      this.logRequest(head, started, { status: verdict.status, outcome: "refused", reason: verdict.reason, detail: verdict.detail, rule: verdict.rule, host: verdict.name });
      return this.refuse(verdict.status, verdict.reason, verdict.detail, false);
    }
    const leg = await this.legFor(verdict);
    if (leg === null || this.done) return;
    this.req = { head, verdict, started, bytesUp: 0, bytesDown: 0, response: null };
    const target = head.form === "absolute" ? originForm(head.target) : head.target;
    leg.parser.expect(head.method);
    this.send(leg, serializeRequestHead({ method: head.method, target, version: head.version, headers: verdict.headers }));
  }

  private async legFor(v: Verdict): Promise<Leg | null> {
    const key = `${v.rule.name}|${v.upstream.address.text}|${v.upstream.port}|${v.upstream.serverName ?? ""}`;
    if (this.leg !== null && this.leg.key === key && !this.leg.closed) return this.leg;
    this.leg?.socket.end();
    this.leg = null;
    const tls = await this.deps.legTls(v);
    if ("refused" in tls) {
      this.refuse(502, tls.refused, tls.detail);
      return null;
    }
    const up = await openUpstream({ address: v.upstream.address, port: v.upstream.port, tls }, this.deps.upstream);
    if (!up.ok) {
      this.refuse(502, up.reason ?? up.outcome, up.detail);
      return null;
    }
    const leg: Leg = { key, socket: up.socket, parser: new ResponseParser(), peerId: up.peerId, connId: hex(up.connId), queue: [], closed: false };
    up.socket.data.sp = this.sinkFor(leg) as unknown as Splice;
    for (const chunk of up.socket.data.early) this.upstreamData(leg, chunk);
    up.socket.data.early = [];
    if (up.socket.data.closed || up.socket.data.ended) this.upstreamEnded(leg);
    up.socket.resume();
    this.leg = leg;
    return leg;
  }

  /** What upstream.ts's socket handlers call (they were written for a splice). */
  private sinkFor(leg: Leg) {
    return {
      down: { data: (c: Uint8Array) => this.upstreamData(leg, c), ended: () => this.upstreamEnded(leg), drain() {} },
      up: { data() {}, ended() {}, drain: () => this.upstreamDrain(leg) },
      upstreamClosed: () => this.upstreamEnded(leg),
      clientClosed() {},
    };
  }

  private send(leg: Leg, bytes: Uint8Array): void {
    if (leg.queue.length > 0) {
      leg.queue.push(bytes.slice());
      return;
    }
    const n = Math.max(0, leg.socket.write(bytes));
    if (n < bytes.length) {
      leg.queue.push(bytes.slice(n));
      this.client.pause();
    }
  }

  private upstreamDrain(leg: Leg): void {
    while (leg.queue.length > 0) {
      const b = leg.queue[0]!;
      const n = Math.max(0, leg.socket.write(b));
      if (n < b.length) {
        leg.queue[0] = b.subarray(n);
        return;
      }
      leg.queue.shift();
    }
    this.client.resume();
  }

  private upstreamData(leg: Leg, chunk: Uint8Array): void {
    if (leg !== this.leg || this.done) return;
    for (const e of leg.parser.push(chunk)) this.onResponse(leg, e);
  }

  private upstreamEnded(leg: Leg): void {
    if (leg.closed) return;
    leg.closed = true;
    if (leg !== this.leg || this.done) return;
    for (const e of leg.parser.finish()) this.onResponse(leg, e);
    if (this.req !== null) this.failUpstream("the upstream closed before its response ended");
  }

  private onResponse(leg: Leg, e: ResponseEvent): void {
    const r = this.req;
    if (r === null) {
      if (e.kind !== "end") leg.socket.end();
      return;
    }
    if (e.kind === "error") return this.failUpstream(`the upstream's response broke HTTP/1.1: ${e.error.code}`);
    if (e.kind === "tunnel") return this.failUpstream("the upstream switched protocols");
    if (e.kind === "head") {
      r.response = e.head;
      return this.toClient(leg, serializeResponseHead({ status: e.head.status, reason: e.head.reason, version: "HTTP/1.1", headers: e.head.headers }));
    }
    const framing = r.response?.framing;
    if (e.kind === "body") {
      r.bytesDown += e.bytes.length;
      return this.toClient(leg, framing === "chunked" ? encodeChunk(e.bytes) : e.bytes);
    }
    if (framing === "chunked") this.toClient(leg, lastChunk(e.trailers));
    const res = r.response;
    if (res !== null && res.status >= 100 && res.status < 200) return; // interim: the final response follows
    this.count += 1;
    this.logRequest(r.head, r.started, { status: res?.status ?? null, outcome: "forwarded", rule: r.verdict.rule.name, host: r.verdict.name, path: r.verdict.path, secrets: r.verdict.secrets, upstream: `${r.verdict.upstream.address.text}:${r.verdict.upstream.port}`, peer_id: leg.peerId, upstream_conn_id: leg.connId, bytes_up: r.bytesUp, bytes_down: r.bytesDown });
    const keep = r.head.keepAlive && res !== null && res.keepAlive && !leg.closed;
    this.req = null;
    if (!keep) return this.finish({ outcome: "closed" });
    this.waiting = false;
    void this.pump();
  }

  private toClient(leg: Leg, bytes: Uint8Array): void {
    if (!this.client.write(bytes)) leg.socket.pause();
  }

  private failUpstream(detail: string): void {
    const r = this.req;
    if (r !== null && r.response === null) {
      this.logRequest(r.head, r.started, { status: 502, outcome: "upstream_failed", detail, rule: r.verdict.rule.name, host: r.verdict.name });
      return this.refuse(502, "upstream_failed", detail, false);
    }
    this.finish({ outcome: "upstream_failed", detail });
  }

  /** Answers `status` with the reason in the body, then closes: nothing later is read. */
  private refuse(status: number, reason: string, detail: string, log = true): void {
    if (this.done) return;
    const r = this.req;
    if (log && r === null) this.deps.logger.info("http_request", { ...this.base, outcome: "refused", status, reason, detail });
    // A request already sent upstream whose body then broke HTTP/1.1: its line says so; the leg is
    // closed mid-request, so the upstream never sees it complete.
    if (log && r !== null) this.logRequest(r.head, r.started, { status, outcome: "refused", reason, detail, rule: r.verdict.rule.name, host: r.verdict.name, path: r.verdict.path });
    const body = new TextEncoder().encode(`tidegate: ${reason}\n`);
    this.client.write(serializeResponseHead({ status, reason: STATUS_TEXT[status] ?? "Error", headers: [["content-type", "text/plain"], ["content-length", String(body.length)], ["connection", "close"]] }));
    this.client.write(body);
    this.finish({ outcome: "refused", reason, detail });
  }

  private logRequest(head: RequestHead, started: number, fields: Fields): void {
    this.deps.logger.info("http_request", { ...this.base, method: head.method, ...fields, duration_ms: Math.round(performance.now() - started) });
  }

  private finish(fields: Fields): void {
    if (this.done) return;
    this.done = true;
    this.leg?.socket.end();
    this.client.end();
    this.onDone({ ...fields, requests: this.count });
  }
}

/** "http://host/p?q" as "/p?q": what an origin server expects. */
function originForm(target: string): string {
  const u = new URL(target);
  return `${u.pathname}${u.search}`;
}
