/**
 * The HTTP/1.1 exchange of one intercepted connection (issue 8): every request the workload sends,
 * pipelined or kept alive, is parsed (src/http1/), decided and rewritten (request-policy.ts), and
 * sent upstream on a TLS or mTLS leg (upstream.ts); the responses come back in order.
 *
 * Guarantees:
 * - every request is decided before any byte of it leaves: a refused one is answered here (its
 *   status and reason) and the connection is closed, so nothing after it is read as a request;
 * - requests are handled one at a time: the next one (already sent, pipelined) waits in the parser
 *   until the response to the one before has ended, so responses cannot be reordered; at most
 *   MAX_HELD bytes of heads and bodies wait so (more: 400 `too_much_ahead`, the connection closed);
 * - bodies stream both ways with backpressure (a full writer pauses the other side) and keep
 *   their framing: a fixed length is passed as is, a chunked body is re-chunked;
 * - a stream that breaks HTTP/1.1 (smuggling shapes, oversized heads: src/http1/errors.ts) is
 *   answered 400 with the parser's code, and the connection closed;
 * - an upstream leg is reused for the next request while its key stays the same (`legKey`: caller,
 *   rule, and what the leg's TLS vouched for), both sides keep the connection alive and the
 *   answer came after the whole request was sent (an early answer leaves body bytes owed); between
 *   requests and at the end of the connection it goes back to the pool (leg-pool.ts), where the
 *   next connection with that key finds it. A request without a body, of an idempotent method,
 *   whose reused leg closes before any byte of the response, is sent once more on a new leg (the
 *   upstream closed it while it was idle: RFC 9112 section 9.3.1);
 * - an upgrade the rule allows (`upgrade: [websocket]`) is forwarded; a 101 answer turns the
 *   connection into a tunnel: bytes pass as they are both ways, nothing more is parsed or
 *   decided, and the leg is never reused. Any other answer is an ordinary response, and the bytes
 *   the workload sent after the request are then read as its next request.
 * - bounds (`proxy:`): a request head must be whole within the header bound (head-deadline.ts:
 *   the first from the connection's hand-over, so including an intercepted TLS handshake, each
 *   later one from its first byte), else the workload gets 408 `header_timeout` and the
 *   connection closes; (watchdog.ts) a request's answer must begin within the first-byte bound of
 *   the last byte sent upstream, else the workload gets 504 `upstream_first_byte_timeout`; a
 *   connection without a byte either way for the idle bound ends (`idle_timeout`): an answer that
 *   was streaming is cut (the workload's connection reset), so it cannot pass for a whole one;
 * - a stopping agent (`drain`) ends the connection after the answer in progress (at once when none
 *   is); one still open at its deadline (`cut`) is answered 503 when its answer had not begun, else
 *   reset; either way the request's line and the connection's say why.
 * One `http_request` audit event per request: method, host, path (never the query), rule, status,
 * the secrets injected (by name), body bytes each way, duration.
 */
import { lastChunk, encodeChunk, RequestParser, requestHeadBytes, responseHeadBytes, refusalResponse, type Header, type RequestEvent, type RequestHead, type ResponseEvent, type ResponseHead } from "../../http1/index.ts";
import type { Audit } from "../../audit/sink/audit-log.ts";
import { hex } from "../peer-tls.ts";
import { openUpstream, sessionKeyOf, type UpstreamDeps, type UpstreamTls } from "../upstream.ts";
import type { LegPool } from "./leg-pool.ts";
import { decideRequest, requestTrailers, type RequestContext, type RequestDeps, type RequestVerdict } from "./request-policy.ts";
import { UpstreamLeg, type LegOwner } from "./upstream-leg.ts";
import { originForm, requestEvent } from "./request-event.ts";
import type { ListsSeen, McpGate, PinStore, SessionLists } from "../../mcp/index.ts";
import { following, gateRule, openGate } from "../mcp/gate-rule.ts";
import { BodyBuffer, concatBytes, gateRequest, McpResponse } from "../mcp/http-filter.ts";
import { MAX_HELD } from "../mcp/relay.ts";
import { boundsOf, DEFAULT_PROXY_SETTINGS, type EgressRule, type ProxySettings } from "../../policy/model.ts";
import { expiryFields, Watchdog, type Expiry } from "../watchdog.ts";
import { HeadDeadline } from "../head-deadline.ts";
import { CorkedClient } from "./cork.ts";
import { copyOf } from "../../http1/bytes.ts";

/** The workload's side: a Bun socket, or a TLS socket terminating its TLS. */
export interface ClientSide {
  /** False: the rest is queued; `drain` will be called. */
  write(bytes: Uint8Array): boolean;
  /** True when `write` keeps no reference to the bytes once it returns (what it queues, it copies). */
  readonly copies?: boolean;
  end(): void;
  /** Closes at once, with a reset. */
  abort(): void;
  pause(): void;
  resume(): void;
}

export interface ExchangeDeps extends RequestDeps {
  readonly upstream: UpstreamDeps;
  /** How a leg for this rule is wrapped (tls or mtls), or why it cannot be. */
  legTls(verdict: Extract<RequestVerdict, { ok: true }>): UpstreamTls | { refused: string; detail: string };
  /** Where idle legs wait for the next connection; null: a leg lives as long as its connection. */
  readonly pool: LegPool | null;
  /** One http_request event per request. */
  readonly audit: Audit;
  /** False while the audit log cannot be written and audit.on_failure is refuse: each new request is answered 503 and the connection closed. */
  readonly accepting?: () => boolean;
  /**
   * Why the caller no longer has the identity the connection was opened under (its workload's
   * registration changed), or null: asked at each request, refused 403 `identity_revoked` and the
   * connection closed. Absent: not asked.
   */
  readonly revoked?: () => string | null;
  /** Tool pins of MCP servers (rules with `mcp:`); absent: none are kept. */
  readonly pins?: PinStore;
  /** The MCP sessions' lists, shared with the listener's other connections (lists-seen.ts); absent: clients are not told of list changes. */
  readonly sessions?: SessionLists;
  /** First-byte and idle bounds (`proxy:`; the connect bound is `upstream.timeoutMs`); default DEFAULT_PROXY_SETTINGS. */
  readonly timeouts?: ProxySettings;
  /** Whether the bundles in force still hold the authority that vouched for an mTLS leg's peer (peer-verifier.ts `stillAnchored`), asked at `recheck`; absent: not asked. */
  readonly anchored?: (peer: NonNullable<UpstreamLeg["peer"]>) => boolean;
}

type Fields = Record<string, unknown>;
type Verdict = Extract<RequestVerdict, { ok: true }>;

interface Req {
  readonly head: RequestHead;
  readonly verdict: Verdict;
  readonly started: number;
  /** The head as sent upstream, kept while it may have to be sent again. */
  sent: Uint8Array | null;
  bytesUp: number;
  bytesDown: number;
  response: ResponseHead | null;
  /**
   * A request under a rule with `mcp:`: its gate (and the rule the gate follows, `live`), its body
   * read whole, then its response through the gate. `stream`, for a GET (the session's stream),
   * the session's record of its lists, and `judged` the engine it was last decided under (`recheck`).
   */
  mcp: { gate: McpGate; live: { rule: EgressRule }; body: BodyBuffer | null; id: string | number | null; stream: ListsSeen | null; judged: unknown; response: McpResponse | null } | null;
}

/** A request's body bytes each way so far, as its line and the connection's count them. */
const bodyBytes = (r: Req) => ({ bytes_up: r.bytesUp, bytes_down: r.bytesDown });

/** The same names and values, in the same order. */
function sameHeaders(a: readonly Header[], b: readonly Header[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i]![0] !== b[i]![0] || a[i]![1] !== b[i]![1]) return false;
  return true;
}

/**
 * An answer's fields as the workload gets them: the framing fields as the parser read them,
 * written one way (one decimal Content-Length for "002", "2, 2" or the field twice; "chunked"
 * for any case of it), so the workload's client frames the body as the exchange does, and a
 * hostile upstream cannot have it read part of one answer as the next. The fields as they
 * came when they already are so.
 */
function responseFields(h: ResponseHead): readonly Header[] {
  const sent = h.headers.entries;
  const names = h.headers.names();
  let out: Header[] | null = null;
  let length = false;
  for (let i = 0; i < sent.length; i++) {
    const k = names[i]!;
    let f: Header | null = sent[i]!;
    if (k === "content-length") {
      const text = String(h.contentLength ?? 0);
      f = length ? null : f[1] === text ? f : [f[0], text];
      length = true;
    } else if (k === "transfer-encoding" && f[1] !== "chunked") f = [f[0], "chunked"];
    if (f !== sent[i] && out === null) out = sent.slice(0, i);
    if (out !== null && f !== null) out.push(f);
  }
  return out ?? sent;
}

/** RFC 9110 section 9.2.2. */
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);


/** What a leg may be reused for: the caller, the rule, and everything its TLS vouched for. */
export function legKey(caller: string, rule: string, address: Verdict["upstream"]["address"], port: number, tls: UpstreamTls): string {
  return `${caller}|${rule}|${sessionKeyOf({ address, port, tls })}`;
}

/** True when sessionKeyOf would give the same text for `a` and `b` (upstream.ts): the parts of a leg's TLS that its key names. */
export function sameKeyParts(a: UpstreamTls, b: UpstreamTls): boolean {
  if (a.serverName !== b.serverName || (a.keyExchange ?? "hybrid") !== (b.keyExchange ?? "hybrid")) return false;
  if (a.kind === "tls") return b.kind === "tls" && (a.ca === b.ca || (a.ca !== null && b.ca !== null && a.ca.id === b.ca.id));
  return b.kind === "mtls" && (a.serverId === b.serverId || a.serverId.equals(b.serverId)) && a.credential.serial === b.credential.serial && a.trust.generation === b.trust.generation;
}

/**
 * Why a tunnel (or an MCP session's stream: `what` names the request) opened under `was` no longer
 * holds now that its request is decided `now` (HttpExchange.recheck), or null.
 */
function tunnelChange(was: Verdict, now: RequestVerdict, what = "the request that switched protocols"): Fields | null {
  if (!now.ok) {
    if (now.reason === "dns_failed" || now.reason === "secret_missing") return null;
    return { outcome: "terminated", reason: "policy_changed", detail: `a policy reload: the policy in force now refuses ${what} (${now.reason}: ${now.detail})` };
  }
  const r = now.rule;
  const p = was.rule;
  const same = r.action === p.action && now.upstream.address.text === was.upstream.address.text && now.upstream.port === was.upstream.port && now.upstream.serverName === was.upstream.serverName && (r.serverId?.toString() ?? null) === (p.serverId?.toString() ?? null) && r.ca === p.ca && r.keyExchange === p.keyExchange;
  if (same) return null;
  return { outcome: "terminated", reason: "policy_changed", detail: `a policy reload: ${what} would now go by rule ${r.name} (${r.action}) to ${now.upstream.address.text}:${now.upstream.port}, where it went by rule ${p.name} (${p.action}) to ${was.upstream.address.text}:${was.upstream.port}, or with other TLS terms` };
}

export class HttpExchange implements LegOwner {
  private readonly requests = new RequestParser();
  private readonly events: RequestEvent[] = [];
  private busy = false;
  private waiting = false;
  private done = false;
  private clientEnded = false;
  private leg: UpstreamLeg | null = null;
  private req: Req | null = null;
  /** After a 101: bytes pass as they are; each flag says that side has ended. */
  private tunnel: { up: boolean; down: boolean; bytesUp: number; bytesDown: number } | null = null;
  /** Its http_request lines (requests forwarded, refused or cut), for the connection's line. */
  count = 0;
  /** List-changed notifications sent to the client on MCP sessions' streams (http-filter.ts McpResponse): the connection's line's `lists_announced`. */
  private announced = 0;
  /** Body bytes of all its requests and responses, as their http_request lines count them: the connection's line adds a tunnel's. */
  private bodyUp = 0;
  private bodyDown = 0;
  /** One MCP gate per rule with `mcp:` the connection's requests went to. */
  /** Per rule name, its MCP conversation on this connection, and the rule object the last request was decided by (a reload swaps it). */
  private readonly gates = new Map<string, { rule: EgressRule; gate: McpGate }>();

  /** The first-byte and idle bounds: bytes sent upstream, bytes from it, bytes from the workload. */
  private readonly watch: Watchdog;
  /** The header bound: runs while a request head is awaited (`awaitingHead`). */
  private readonly head: HeadDeadline;
  /** The agent is stopping: the connection ends after the answer in progress. */
  private draining = false;
  /** A request decided and waiting for its upstream leg. */
  private starting: { head: RequestHead; started: number; verdict: Verdict } | null = null;
  /** The policy engine the last request was decided under. */
  private decidedUnder: unknown = null;
  /** After a 101: the request that switched, its verdict, and the engine the tunnel was last judged under (`recheck`). */
  private upgraded: { head: RequestHead; verdict: Verdict; engine: unknown } | null = null;

  private readonly client: CorkedClient;

  constructor(
    client: ClientSide,
    private readonly ctx: RequestContext,
    private readonly base: Fields,
    private readonly deps: ExchangeDeps,
    private readonly onDone: (fields: Fields) => void,
  ) {
    this.client = new CorkedClient(client, client.copies === true);
    const t = deps.timeouts ?? DEFAULT_PROXY_SETTINGS;
    this.top = this.bounds = t;
    this.watch = new Watchdog(t, (why: Expiry) => this.endNow(expiryFields(why, this.bounds, "upstream"), 504));
    this.head = new HeadDeadline(t.headerTimeoutMs, () => {
      if (this.awaitingHead()) this.refuse(408, "header_timeout", this.head.fields().detail);
    });
    this.head.update(true);
  }

  /**
   * Waiting for a request head: nothing being decided or answered (`pump` leaves no event queued
   * when it is neither busy nor waiting), and either no request yet or the next one's first byte
   * came.
   */
  private awaitingHead(): boolean {
    if (this.done || this.tunnel !== null || this.req !== null || this.busy || this.waiting) return false;
    return this.requests.awaitingHead && (this.count === 0 || this.requests.inHead);
  }

  /** No request in progress, decided, held or begun (no part of a head read), and no tunnel. */
  private betweenRequests(): boolean {
    return this.req === null && this.starting === null && this.tunnel === null && !this.busy && !this.waiting && this.events.length === 0 && !this.requests.inHead;
  }

  /**
   * The agent is stopping: ends after the answer in progress, or at once between requests. A
   * connection that has not had an answer yet (still in its TLS handshake, say) gets its first.
   */
  drain(): void {
    this.draining = true;
    if (!this.done && this.count > 0 && this.req === null && this.tunnel === null && !this.busy && !this.waiting && this.events.length === 0) this.finish({ outcome: "closed", detail: "the agent is stopping" });
  }

  /** The agent's drain deadline: ends now, recorded with `why` (in-flight.ts). */
  cut(why: Readonly<Fields>): void {
    this.endNow(why, 503);
  }

  /**
   * The proxy ends the connection (a bound, the agent's stop), recorded with `why`: a request
   * waiting for its answer is answered `status`; an answer or a tunnel in progress is cut, the
   * workload's connection reset; between requests it simply closes.
   */
  private endNow(why: Readonly<Fields>, status: number): void {
    if (this.done) return;
    const r = this.req;
    const reason = String(why.reason ?? "");
    // The proxy ended it, not the workload: an MCP call still waiting will not be resumed.
    if (this.logCut(why, status)) {
      this.client.write(refusalResponse(status, reason));
      return this.finish(why, false, true);
    }
    this.finish(why, r !== null || this.tunnel !== null, true);
  }

  /**
   * The request in progress, if any, is logged as ended by `why`, with `status` if its answer had
   * not begun (null: nobody got one); true when there was one waiting for its answer.
   */
  private logCut(why: Readonly<Fields>, status: number | null): boolean {
    const r = this.req;
    const cause = { outcome: why.outcome, ...(why.reason !== undefined ? { reason: String(why.reason) } : {}), detail: String(why.detail ?? "") };
    if (r !== null) {
      const v = r.verdict;
      const answered = r.response === null ? { status, upstream: `${v.upstream.address.text}:${v.upstream.port}`, peer_id: this.leg?.peerId ?? null, ...bodyBytes(r) } : this.forwarded(r, this.leg, String(why.outcome));
      this.logRequest(r.head, r.started, { ...answered, ...cause, rule: v.rule.name, host: v.name, path: v.path });
      return r.response === null;
    }
    const s = this.starting;
    if (s === null) return false;
    // Decided, its leg still being opened: answered like one waiting for its answer.
    this.logRequest(s.head, s.started, { status, ...cause, rule: s.verdict.rule.name, host: s.verdict.name, path: s.verdict.path });
    return true;
  }

  clientData(chunk: Uint8Array): void {
    if (this.done) return;
    this.watch.moved();
    if (this.tunnel !== null) return this.tunnelUp(chunk);
    for (const e of this.requests.push(chunk)) this.hold(e);
    if (this.held > MAX_HELD) return this.refuse(400, "too_much_ahead", `over ${MAX_HELD} bytes sent ahead of an answer`);
    this.pump();
    this.head.update(this.awaitingHead());
  }

  /** Bytes of request heads and bodies parsed and not handled yet (pipelined behind a pending answer). */
  private held = 0;

  private hold(e: RequestEvent): void {
    // a head counts too: a stream of bodiless requests behind a pending answer would else grow without bound
    if (e.kind === "head") this.held += e.head.headLength;
    if (e.kind !== "body") return void this.events.push(e);
    this.held += e.bytes.length;
    this.events.push({ kind: "body", bytes: copyOf(e.bytes) });
  }

  clientEnd(): void {
    this.clientEnded = true;
    const t = this.tunnel;
    if (t !== null) {
      t.up = true;
      this.leg?.endWrites();
      if (t.down) this.finish({ outcome: "closed" });
      return;
    }
    for (const e of this.requests.finish()) this.hold(e);
    if (!this.waiting && !this.busy && this.events.length === 0) this.finish({ outcome: "closed" });
    else this.pump();
  }

  /**
   * The workload's connection closed (or was reset): a request in progress is logged as cut. Between
   * requests nothing is lost, and the connection closed as connections do (a TLS workload's close
   * comes here without an end first).
   */
  clientClosed(): void {
    if (this.done) return;
    if (this.betweenRequests()) return this.finish({ outcome: "closed" });
    this.logCut({ outcome: "client_gone", detail: "the workload's connection closed before the answer ended" }, null);
    this.finish({ outcome: "client_gone" });
  }

  /** The client's writer has room again. */
  clientDrain(): void {
    this.leg?.resume();
  }

  /**
   * Handles the queued events in order, one at a time. Synchronous while each event is handled
   * at once (a kept-alive connection's usual request: its name cached, its leg at hand), so no
   * promise is made per request; when one has to wait (a name look-up, a new leg, an MCP gate),
   * the rest follow once it has settled, and `busy` holds meanwhile.
   */
  private pump(): void {
    if (this.busy) return;
    this.busy = true;
    this.pumpOn();
  }

  /** The loop of `pump`, entered with `busy` set; left with it cleared unless an event is still pending. */
  private pumpOn(): void {
    try {
      while (!this.done && !this.waiting && this.events.length > 0) {
        const e = this.events.shift()!;
        if (e.kind === "body") this.held -= e.bytes.length;
        else if (e.kind === "head") this.held -= e.head.headLength;
        const pending = this.onRequest(e);
        if (pending !== undefined) return this.pumpAfter(pending);
      }
      if (!this.done && !this.waiting && this.events.length === 0 && this.clientEnded && this.req === null) this.finish({ outcome: "closed" });
    } catch (e) {
      return this.pumpFailed(e);
    }
    this.pumpDone();
  }

  /*
   * The closures that continue after a promise live in these small methods, not in the methods on
   * every request's path: a closure there (even one not made on that call) has the runtime make a
   * scope object for the method's variables on every call.
   */

  /** The loop goes on once `pending` has settled. */
  private pumpAfter(pending: Promise<void>): void {
    pending.then(
      () => this.pumpOn(),
      (err: unknown) => this.pumpFailed(err),
    );
  }

  private decidedAfter(verdict: Promise<RequestVerdict>, head: RequestHead, started: number): Promise<void | undefined> {
    return verdict.then((v) => this.decided(head, started, v));
  }

  private sendAfter(leg: Promise<UpstreamLeg | null>, head: RequestHead, started: number, verdict: Verdict): Promise<void> {
    return leg.then((l) => this.sendRequest(head, started, verdict, l));
  }

  private pumpFailed(e: unknown): void {
    try {
      this.refuse(502, "internal_error", e instanceof Error ? e.message : String(e));
    } finally {
      this.pumpDone();
    }
  }

  private pumpDone(): void {
    this.busy = false;
    this.head.update(this.awaitingHead());
  }

  /** undefined when handled at once; else a promise that settles when it has been. */
  private onRequest(e: RequestEvent): Promise<void> | undefined {
    if (e.kind === "error") return void this.refuse(400, e.error.code, e.error.message);
    if (e.kind === "tunnel") return void this.refuse(403, "upgrade_refused", "bytes after a protocol switch");
    if (e.kind === "head") return this.begin(e.head);
    const r = this.req;
    const leg = this.leg;
    if (r === null || leg === null) {
      // The rest of a request answered before its end (responseEnded) is dropped; at its end, what
      // the parser holds after an upgrade request (it was answered without a switch) is the next request.
      if (r === null && e.kind === "end" && this.requests.held) for (const ev of this.requests.resume()) this.hold(ev);
      return;
    }
    if (e.kind === "body") {
      r.bytesUp += e.bytes.length;
      this.bodyUp += e.bytes.length;
      if (r.mcp !== null) return void r.mcp.body?.push(e.bytes);
      r.sent = null;
      this.send(leg, r.head.framing === "chunked" ? encodeChunk(e.bytes) : e.bytes);
    } else if (r.mcp !== null) {
      this.waiting = true;
      return this.mcpSend(leg, r);
    } else {
      if (r.head.framing === "chunked") {
        r.sent = null;
        this.send(leg, lastChunk(requestTrailers(e.trailers, r.verdict.rule)));
      }
      this.waiting = true;
    }
  }

  /** A request head: decided, then sent on its leg; a promise only while either has to wait. */
  private begin(head: RequestHead): Promise<void> | undefined {
    const started = performance.now();
    // A connection opened before the log failed must not carry requests past it (on_failure: refuse).
    if (this.deps.accepting?.() === false) {
      this.logRequest(head, started, { status: 503, outcome: "refused", reason: "audit_unavailable" });
      return void this.refuse(503, "audit_unavailable", "the audit log cannot be written", false);
    }
    const revoked = this.deps.revoked?.() ?? null;
    if (revoked !== null) {
      this.logRequest(head, started, { status: 403, outcome: "refused", reason: "identity_revoked", detail: revoked });
      return void this.refuse(403, "identity_revoked", revoked, false);
    }
    this.decidedUnder = this.deps.engine();
    const verdict = decideRequest(this.ctx, head, this.deps);
    if (verdict instanceof Promise) return this.decidedAfter(verdict, head, started);
    return this.decided(head, started, verdict);
  }

  private decided(head: RequestHead, started: number, verdict: RequestVerdict): Promise<void> | undefined {
    if (!verdict.ok) {
      this.logRequest(head, started, { status: verdict.status, outcome: "refused", reason: verdict.reason, detail: verdict.detail, rule: verdict.rule, host: verdict.name });
      return void this.refuse(verdict.status, verdict.reason, verdict.detail, false);
    }
    this.starting = { head, started, verdict };
    this.boundsFor(verdict.rule);
    const leg = this.legFor(verdict, true);
    if (leg instanceof Promise) return this.sendAfter(leg, head, started, verdict);
    this.sendRequest(head, started, verdict, leg);
  }

  /** The top-level bounds (`proxy:`), and those in force: the last request's rule's own over them (`boundsFor`). */
  private readonly top: ProxySettings;
  private bounds: ProxySettings;
  private boundsRule: EgressRule | null = null;

  /**
   * The bounds of a request `rule` decided: its own over the top-level ones (policy model.ts
   * `boundsOf`), for its leg's connect, its answer's first byte, and the idle bound until the next
   * request is decided.
   */
  private boundsFor(rule: EgressRule): void {
    if (rule === this.boundsRule) return;
    this.boundsRule = rule;
    const b = boundsOf(this.top, rule.bounds);
    if (b.firstByteTimeoutMs !== this.bounds.firstByteTimeoutMs || b.idleTimeoutMs !== this.bounds.idleTimeoutMs) this.watch.setBounds(b);
    this.bounds = b;
  }

  /** The decided request goes out on `leg` (null: none could be had, and the request was answered). */
  private sendRequest(head: RequestHead, started: number, verdict: Verdict, leg: UpstreamLeg | null): void {
    this.starting = null;
    if (leg === null || this.done) return;
    const target = head.form === "absolute" ? originForm(head.target) : head.target;
    const sent = this.requestHead(head, target, verdict.headers);
    const mcp = verdict.rule.mcp !== null ? { ...this.gateFor(verdict), body: head.framing === "none" ? null : new BodyBuffer(), id: null, stream: null, judged: null, response: null } : null;
    this.req = { head, verdict, started, sent: head.framing === "none" && IDEMPOTENT.has(head.method) ? sent : null, bytesUp: 0, bytesDown: 0, response: null, mcp };
    if (mcp === null) this.sendHead(leg, head, sent); // else at its end (mcpSend), once decided
  }

  /** The gate of `v`'s rule on this connection; after a reload it follows the rule this request was decided by (so do the server's messages after it). */
  private gateFor(v: Verdict): { gate: McpGate; live: { rule: EgressRule } } {
    const rule = v.rule;
    const had = this.gates.get(rule.name);
    if (had !== undefined) {
      had.rule = rule;
      return { gate: had.gate, live: had };
    }
    const server = rule.serverId?.toString() ?? rule.name;
    const live = { rule };
    const gate = openGate(following(() => live.rule, gateRule), { caller: this.ctx.from.toString(), server, connId: (this.base.conn_id as string | undefined) ?? null }, this.deps.audit, this.deps.pins ?? null, this.deps.sessions !== undefined ? { announcesLists: true, sessions: this.deps.sessions } : {});
    this.gates.set(rule.name, Object.assign(live, { gate }));
    return { gate, live };
  }

  /** An MCP request read whole: through the gate, then upstream, or answered here (the connection stays open). */
  private async mcpSend(leg: UpstreamLeg, r: Req): Promise<void> {
    const m = r.mcp!;
    const target = r.head.form === "absolute" ? originForm(r.head.target) : r.head.target;
    const out = await gateRequest(m.gate, r.head, r.verdict.headers, m.body);
    if (this.done || this.req !== r) return;
    if (!out.forward) {
      this.client.write(out.response);
      this.logRequest(r.head, r.started, { status: out.status, outcome: "refused", reason: out.reason, rule: r.verdict.rule.name, host: r.verdict.name, path: r.verdict.path, ...bodyBytes(r) });
      this.req = null;
      if (out.close || this.draining) return this.finish({ outcome: "closed" });
      this.waiting = false;
      return void this.pump();
    }
    m.id = out.id;
    m.stream = out.stream;
    m.judged = this.decidedUnder;
    const head = requestHeadBytes(r.head.method, target, r.head.version, out.headers);
    if (r.sent !== null) r.sent = head;
    this.sendHead(leg, r.head, out.body.length > 0 ? concatBytes([head, out.body]) : head); // one write
    this.waiting = true;
  }

  private sendHead(leg: UpstreamLeg, head: RequestHead, bytes: Uint8Array): void {
    leg.parser.expect(head.method, head.upgrade.length > 0);
    this.watch.expectAnswer(); // each request's answer must begin within the first-byte bound
    this.send(leg, bytes);
  }

  /**
   * The current leg if its key matches, else one from the pool (`pooled`), both at once; else a
   * new one, once opened. null: none could be had (the request was answered).
   */
  private legFor(v: Verdict, pooled: boolean): UpstreamLeg | null | Promise<UpstreamLeg | null> {
    const tls = this.deps.legTls(v);
    if ("refused" in tls) {
      this.refuse(502, tls.refused, tls.detail);
      return null;
    }
    const key = this.keyFor(v, tls);
    if (this.leg !== null && this.leg.key === key && !this.leg.closed) return this.leg;
    this.releaseLeg();
    const idle = pooled ? (this.deps.pool?.take(key) ?? null) : null;
    if (idle !== null) {
      idle.owner = this;
      this.leg = idle;
      return idle;
    }
    return this.openLeg(v, tls, key);
  }

  private async openLeg(v: Verdict, tls: UpstreamTls, key: string): Promise<UpstreamLeg | null> {
    const up = await openUpstream({ address: v.upstream.address, port: v.upstream.port, tls }, this.bounds === this.top ? this.deps.upstream : { ...this.deps.upstream, timeoutMs: this.bounds.connectTimeoutMs });
    if (!up.ok) {
      this.refuse(up.reason === "upstream_connect_timeout" ? 504 : 502, up.reason ?? up.outcome, up.detail, true, up.outcome);
      return null;
    }
    const leg = new UpstreamLeg(key, up.socket, up.peerId, hex(up.connId), up.peer ?? null);
    if (this.done) {
      leg.end();
      return null;
    }
    leg.owner = this;
    this.leg = leg;
    leg.start();
    return leg;
  }

  /** The last leg key made, and what it was made from. */
  private lastKey: { readonly rule: string; readonly address: string; readonly port: number; readonly tls: UpstreamTls; readonly key: string } | null = null;

  /**
   * legKey for this request: the last one when nothing it is made of changed (the usual case on a
   * kept-alive connection), so the string is not built again on every request.
   */
  private keyFor(v: Verdict, tls: UpstreamTls): string {
    const k = this.lastKey;
    if (k !== null && k.rule === v.rule.name && k.address === v.upstream.address.text && k.port === v.upstream.port && sameKeyParts(k.tls, tls)) return k.key;
    const key = legKey(this.ctx.from.toString(), v.rule.name, v.upstream.address, v.upstream.port, tls);
    this.lastKey = { rule: v.rule.name, address: v.upstream.address.text, port: v.upstream.port, tls, key };
    return key;
  }

  /** The current leg goes back to the pool if it may carry another request, else it is closed. */
  private releaseLeg(): void {
    const leg = this.leg;
    this.leg = null;
    if (leg === null) return;
    leg.owner = null;
    if (this.deps.pool !== null && this.req === null && this.tunnel === null) this.deps.pool.give(leg);
    else leg.end();
  }

  private send(leg: UpstreamLeg, bytes: Uint8Array): void {
    this.watch.sent();
    if (!leg.send(bytes)) this.client.pause();
  }

  legDrain(): void {
    this.client.resume();
  }

  legData(leg: UpstreamLeg, chunk: Uint8Array): void {
    if (leg !== this.leg || this.done) return;
    this.watch.received();
    const t = this.tunnel;
    if (t !== null) {
      t.bytesDown += chunk.length;
      return this.toClient(leg, chunk);
    }
    if (this.req !== null) this.req.sent = null;
    // what this read yields for the client goes out in one write (cork.ts)
    this.client.cork();
    try {
      for (const e of leg.parser.push(chunk)) this.onResponse(leg, e);
    } finally {
      if (!this.client.uncork() && leg === this.leg) leg.pause();
    }
  }

  legEnded(leg: UpstreamLeg): void {
    if (leg !== this.leg || this.done) return;
    const t = this.tunnel;
    if (t !== null) {
      t.down = true;
      this.client.end();
      if (t.up) this.finish({ outcome: "closed" });
      return;
    }
    const r = this.req;
    if (r !== null && r.sent !== null && leg.served > 0) return void this.retry(r, r.sent);
    for (const e of leg.parser.finish()) this.onResponse(leg, e);
    if (this.req !== null) this.failUpstream("the upstream closed before its response ended");
  }

  /** The reused leg was closed by the upstream before it answered: once more, on a new leg. */
  private async retry(r: Req, sent: Uint8Array): Promise<void> {
    r.sent = null;
    this.leg = null;
    const leg = await this.legFor(r.verdict, false);
    if (leg === null || this.done || this.req !== r) return;
    this.sendHead(leg, r.head, sent);
  }

  private onResponse(leg: UpstreamLeg, e: ResponseEvent): void {
    const r = this.req;
    if (r === null) {
      if (e.kind !== "end") leg.end();
      return;
    }
    if (e.kind === "error") return this.failUpstream(`the upstream's response broke HTTP/1.1: ${e.error.code}`);
    if (e.kind === "tunnel") {
      if (this.tunnel === null) return this.failUpstream("the upstream switched protocols");
      this.tunnel.bytesDown += e.bytes.length;
      return this.toClient(leg, e.bytes);
    }
    if (r.mcp !== null) return this.mcpResponse(leg, r, r.mcp, e);
    if (e.kind === "head") {
      r.response = e.head;
      this.toClient(leg, this.responseHead(e.head));
      if (e.head.framing === "tunnel") this.switchProtocols(leg, r);
      return;
    }
    const framing = r.response?.framing;
    if (e.kind === "body") {
      r.bytesDown += e.bytes.length;
      this.bodyDown += e.bytes.length;
      return this.toClient(leg, framing === "chunked" ? encodeChunk(e.bytes) : e.bytes);
    }
    if (framing === "chunked") this.toClient(leg, lastChunk(e.trailers));
    this.responseEnded(leg, r);
  }

  /** The last request head sent, and its bytes: the next one with the same head, target and headers is sent from them. */
  private lastRequest: { readonly head: RequestHead; readonly target: string; readonly headers: readonly Header[]; readonly bytes: Uint8Array } | null = null;

  /**
   * A request head as it goes upstream (the headers the verdict gave: injected ones included),
   * checked as written (serialize.ts). A kept-alive connection mostly sends the same head again
   * (the parser gives the same frozen head, renderHeader the same string while a secret's value
   * is unchanged), so each header is compared, by identity first, before anything is written.
   */
  private requestHead(head: RequestHead, target: string, headers: readonly Header[]): Uint8Array {
    const last = this.lastRequest;
    if (last !== null && last.head === head && last.target === target && sameHeaders(last.headers, headers)) return last.bytes;
    const bytes = requestHeadBytes(head.method, target, head.version, headers);
    this.lastRequest = { head, target, headers, bytes };
    return bytes;
  }

  /** The last response head written, and its bytes: a head that repeats (the parser gives the same frozen head) is written from them. */
  private lastResponse: { readonly head: ResponseHead; readonly bytes: Uint8Array } | null = null;

  /** A response head as the workload gets it: HTTP/1.1, the upstream's status, reason and fields, checked as written (serialize.ts). Never changed once made. */
  private responseHead(h: ResponseHead): Uint8Array {
    const last = this.lastResponse;
    if (last !== null && last.head === h) return last.bytes;
    const bytes = responseHeadBytes(h.status, h.reason, "HTTP/1.1", responseFields(h));
    this.lastResponse = { head: h, bytes };
    return bytes;
  }

  /** A response to an MCP request: through the gate (http-filter.ts), each part in order. */
  private mcpResponse(leg: UpstreamLeg, r: Req, m: NonNullable<Req["mcp"]>, e: Exclude<ResponseEvent, { kind: "error" | "tunnel" }>): void {
    if (e.kind === "head") {
      // Never a tunnel under an MCP rule (the policy refuses upgrade: with mcp:): messages after it would pass unchecked.
      if (e.head.framing === "tunnel") return this.failUpstream("the upstream switched protocols under an MCP rule");
      r.response = e.head;
      m.response = new McpResponse(m.gate, e.head, m.id, (b) => this.toClient(leg, b), m.stream === null ? null : { seen: m.stream, told: (n) => void (this.announced += n) });
      return;
    }
    if (e.kind === "body") {
      r.bytesDown += e.bytes.length;
      this.bodyDown += e.bytes.length;
      return m.response?.body(e.bytes);
    }
    const res = m.response;
    if (res === null) return;
    leg.pause();
    void res.end(e.trailers).then(() => {
      leg.resume();
      if (this.req === r && !this.done) this.responseEnded(leg, r);
    });
  }

  /** The response's last byte went to the client: the request is logged, and the next may come. */
  private responseEnded(leg: UpstreamLeg, r: Req): void {
    const res = r.response;
    if (res !== null && res.status >= 100 && res.status < 200) return; // interim: the final response follows
    this.logRequest(r.head, r.started, this.forwarded(r, leg, "forwarded"));
    const keep = r.head.keepAlive && res !== null && res.keepAlive && !leg.closed;
    leg.served += 1;
    // An answer that came before the request's end (`waiting` is set there): the upstream is still
    // owed the rest of the body, and would read the next request on this leg as those bytes, and
    // what follows them as a request nobody decided. The leg carries nothing more; the rest of the
    // body is read from the workload and dropped, and its next request takes a new leg.
    const whole = this.waiting;
    leg.reusable = keep && whole;
    this.req = null;
    if (!keep) return this.finish({ outcome: "closed" });
    if (!whole) {
      this.leg = null;
      leg.owner = null;
      leg.end();
    }
    if (this.draining) return this.finish({ outcome: "closed", detail: "the agent is stopping" });
    this.waiting = false;
    // An upgrade answered without a switch: what the workload sent after it is its next request.
    if (this.requests.held) for (const ev of this.requests.resume()) this.hold(ev);
    this.pump();
  }

  private forwarded(r: Req, leg: UpstreamLeg | null, outcome: string): Fields {
    const v = r.verdict;
    return { status: r.response?.status ?? null, outcome, rule: v.rule.name, host: v.name, path: v.path, secrets: v.secrets, upstream: this.upstreamText(v.upstream), peer_id: leg?.peerId ?? null, upstream_conn_id: leg?.connId ?? null, bytes_up: r.bytesUp, bytes_down: r.bytesDown };
  }

  /** The last upstream's `address:port`, kept while the requests go to the same one (so not a string per request). */
  private upstreamSeen: { readonly address: string; readonly port: number; readonly text: string } | null = null;

  private upstreamText(u: Verdict["upstream"]): string {
    const seen = this.upstreamSeen;
    if (seen !== null && seen.address === u.address.text && seen.port === u.port) return seen.text;
    const text = `${u.address.text}:${u.port}`;
    this.upstreamSeen = { address: u.address.text, port: u.port, text };
    return text;
  }

  /** A 101: from here bytes pass as they are, both ways; the leg is never reused. */
  private switchProtocols(leg: UpstreamLeg, r: Req): void {
    this.logRequest(r.head, r.started, this.forwarded(r, leg, "upgraded"));
    this.req = null;
    this.tunnel = { up: false, down: false, bytesUp: 0, bytesDown: 0 };
    leg.reusable = false;
    const held = this.requests.held ? this.requests.tunnel() : new Uint8Array(0);
    if (held.length > 0) this.tunnelUp(held);
    if (this.clientEnded) this.clientEnd();
    this.upgraded = { head: r.head, verdict: r.verdict, engine: this.decidedUnder };
    // A reload or a registration change while the switch was awaited found no tunnel to ask: asked now.
    if (this.deps.engine() !== this.decidedUnder || (this.deps.revoked?.() ?? null) !== null) {
      void Promise.resolve(this.recheck()).then((why) => {
        if (why !== null) this.cut(why);
      });
    }
  }

  /**
   * Why a tunnel (bytes passing unparsed after a 101), or an MCP session's stream
   * (`recheckStream`), no longer holds under the registration and policy in force, or null; else
   * always null (each request is decided as it comes).
   * Ended with outcome `terminated`: `identity_revoked`, or `policy_changed` (only under a policy
   * the tunnel was not judged under yet) when the request that switched would now be refused, or
   * sent to another upstream or under other TLS terms (`server_id`, `ca`, key exchange). A
   * look-up that fails (`dns_failed`) or a secret the store no longer holds (`secret_missing`)
   * says nothing about what the policy allows: the tunnel is left as it is.
   */
  recheck(): Fields | null | Promise<Fields | null> {
    const u = this.upgraded;
    if (this.done) return null;
    const untrusted = this.legUntrusted();
    if (untrusted !== null) return untrusted;
    if (this.tunnel === null || u === null) return this.recheckStream();
    const revoked = this.deps.revoked?.() ?? null;
    if (revoked !== null) return { outcome: "terminated", reason: "identity_revoked", detail: revoked };
    const engine = this.deps.engine();
    if (engine === u.engine) return null;
    u.engine = engine;
    const now = decideRequest(this.ctx, u.head, this.deps);
    return now instanceof Promise ? now.then((v) => tunnelChange(u.verdict, v)) : tunnelChange(u.verdict, now);
  }

  /**
   * A bundle change: the mTLS leg this connection holds, whose peer's path ended at an authority the
   * bundles in force no longer hold for the peer's trust domain, carries nothing more. While a
   * request (or a tunnel) is on it, the connection is cut (`peer_untrusted`), as a spliced mtls
   * connection is; between requests the leg is closed, never pooled, and the next request takes
   * a leg made under the bundles in force. Null when nothing was cut.
   */
  private legUntrusted(): Fields | null {
    const leg = this.leg;
    if (leg === null || leg.peer === null || this.deps.anchored === undefined || this.deps.anchored(leg.peer)) return null;
    if (this.req === null && this.tunnel === null) {
      this.leg = null;
      leg.owner = null;
      leg.end();
      return null;
    }
    return { outcome: "terminated", reason: "peer_untrusted", detail: `the bundles in force no longer hold the authority that vouched for ${leg.peer.id.toString()} (a bundle change)` };
  }

  /**
   * An MCP session's stream (a GET, open while the server may send) follows a reload as a tunnel
   * does: its request is decided again under a policy it was not judged under yet, and the stream is
   * cut (`policy_changed`, `identity_revoked`) on the same grounds, and when the rule that decides
   * it now has no `mcp:`. One that holds goes on under the rule that decides it now: its gate
   * follows that rule, so its events are filtered by it, and the session's client is told when what
   * it listed changed (http-filter.ts McpResponse).
   */
  private recheckStream(): Fields | null | Promise<Fields | null> {
    const r = this.req;
    const m = r?.mcp;
    if (r == null || m == null || m.stream === null) return null;
    const revoked = this.deps.revoked?.() ?? null;
    if (revoked !== null) return { outcome: "terminated", reason: "identity_revoked", detail: revoked };
    const engine = this.deps.engine();
    if (engine === m.judged) return null;
    m.judged = engine;
    const follow = (now: RequestVerdict): Fields | null => {
      const why = tunnelChange(r.verdict, now, "the request that opened the MCP session's stream");
      if (why !== null || !now.ok) return why;
      // Its GET would now pass unread: the stream ends, and the one the client opens again is read as its rule says.
      if (now.rule.mcp === null) return { outcome: "terminated", reason: "policy_changed", detail: `a policy reload: the request that opened the MCP session's stream would now go by rule ${now.rule.name}, which has no mcp:` };
      m.live.rule = now.rule;
      return null;
    };
    const now = decideRequest(this.ctx, r.head, this.deps);
    return now instanceof Promise ? now.then(follow) : follow(now);
  }

  private tunnelUp(chunk: Uint8Array): void {
    const leg = this.leg;
    if (leg === null || this.tunnel === null) return;
    this.tunnel.bytesUp += chunk.length;
    this.send(leg, chunk);
  }

  private toClient(leg: UpstreamLeg, bytes: Uint8Array): void {
    if (!this.client.write(bytes)) leg.pause();
  }

  private failUpstream(detail: string): void {
    if (this.done) return;
    const r = this.req;
    if (r !== null && r.response === null) {
      this.logRequest(r.head, r.started, { status: 502, outcome: "upstream_failed", detail, rule: r.verdict.rule.name, host: r.verdict.name, ...bodyBytes(r) });
      return this.refuse(502, "upstream_failed", detail, false, "upstream_failed");
    }
    // An answer in progress was cut: the request (forwarded, its secrets injected) has its line,
    // and the workload's connection is reset, so it cannot take the cut answer for a whole one.
    const why = { outcome: "upstream_failed", detail };
    this.logCut(why, null);
    this.finish(why, r !== null);
  }

  /** Answers `status` with the reason in the body, then closes: nothing later is read. */
  private refuse(status: number, reason: string, detail: string, log = true, outcome = "refused"): void {
    if (this.done) return;
    const r = this.req;
    const s = this.starting;
    // An answer in progress (too much sent ahead while it streamed): an answer written now would
    // be read as part of it. It is cut instead, the workload's connection reset, its line saying why.
    if (r !== null && r.response !== null) {
      const why = { outcome, reason, detail };
      if (log) this.logCut(why, null);
      return this.finish(why, true, true);
    }
    // A request decided and waiting for its leg (which failed): its line names it.
    if (log && r === null && s !== null) this.logRequest(s.head, s.started, { status, outcome, reason, detail, rule: s.verdict.rule.name, host: s.verdict.name, path: s.verdict.path });
    else if (log && r === null) this.logRequest(null, performance.now(), { outcome, status, reason, detail });
    // A request already sent upstream whose body then broke HTTP/1.1: its line says so; the leg is
    // closed mid-request, so the upstream never sees it complete.
    if (log && r !== null) this.logRequest(r.head, r.started, { status, outcome, reason, detail, rule: r.verdict.rule.name, host: r.verdict.name, path: r.verdict.path, ...bodyBytes(r) });
    this.client.write(refusalResponse(status, reason));
    this.finish({ outcome, reason, detail }, false, true);
  }

  /** `head` null: the request broke HTTP/1.1 before its head was whole. */
  private logRequest(head: RequestHead | null, started: number, fields: Fields): void {
    this.count += 1;
    this.deps.audit.emit("http_request", requestEvent(this.base, head, started, fields));
  }

  /**
   * `reset`: the workload's connection is closed with a reset (what it was getting was cut).
   * `answered`: tidegate ended the exchange itself (a refusal, a bound, the agent's stop), so an
   * MCP call still waiting will not be resumed (McpGate.close `final`).
   */
  private finish(fields: Readonly<Fields>, reset = false, answered = false): void {
    if (this.done) return;
    this.done = true;
    this.watch.stop();
    this.head.stop();
    this.req?.mcp?.response?.stop();
    for (const g of this.gates.values()) g.gate.close(answered);
    const t = this.tunnel;
    this.releaseLeg();
    if (reset) this.client.abort();
    else this.client.end();
    const up = this.bodyUp + (t?.bytesUp ?? 0);
    const down = this.bodyDown + (t?.bytesDown ?? 0);
    this.onDone({ ...fields, requests: this.count, ...(this.announced > 0 ? { lists_announced: this.announced } : {}), bytes_up: up, bytes_down: down, ...(t !== null ? { tunnel_bytes_up: t.bytesUp, tunnel_bytes_down: t.bytesDown } : {}) });
  }
}
