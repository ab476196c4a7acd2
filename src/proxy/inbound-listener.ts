/**
 * An inbound listener (docs/policy.md `inbound[]`; DESIGN.md section 1's second scenario): the
 * server side of an mTLS hop. It presents the X.509-SVID the agent holds for the rule's `id` and
 * forwards plaintext to the rule's `forward` target (a TCP address or a Unix socket).
 *
 * A client is forwarded only when all of these hold, checked in this order, each refusal logged
 * with its reason and nothing sent to the backend:
 * 1. it presented a certificate (`client_no_certificate`);
 * 2. the TLS stack verified it against the trusted bundles: `authorized` true and no error
 *    (`client_untrusted`, detail: the TLS error code);
 * 3. tidegate's verifier accepts its chain as an X.509-SVID of a trusted trust domain
 *    (`client_untrusted`, detail: the verifier's code);
 * 4. its SPIFFE ID matches one of the rule's `allow` patterns (`client_not_allowed`).
 * The agent must hold a valid SVID for `id` when the connection arrives (`no_svid` otherwise).
 * With `proxy_protocol: true` the backend first receives a PROXY protocol v2 header with the
 * caller's SPIFFE ID and the connection id (proxy-v2.ts). Every connection has a conn_open and a
 * conn_close audit event (side inbound); its `conn_id` equals the `conn_id` the client side's
 * egress proxy records (peer-tls.ts).
 * With `forward_client_cert: true` each HTTP/1.1 request is rewritten to carry the caller in
 * `x-forwarded-client-cert`, any such header the client sent removed (xfcc.ts).
 *
 * Rotation: an SVID or bundle newer than the one the listener started with is put on each new
 * connection before its handshake (`setKeyCert` with a secure context made once per change), so
 * the listener never restarts and no connection is dropped.
 *
 * Bounds on the backend leg (`proxy:`, read when a connection arrives): connected within the
 * connect bound (`backend_connect_timeout`); then the first-byte and idle bounds of watchdog.ts
 * (`backend_first_byte_timeout`, `idle_timeout`; under `mcp:` the relay applies them per request,
 * mcp/relay.ts); where it parses HTTP (`forward_client_cert`, `mcp:`), the header bound
 * (head-deadline.ts, `header_timeout`: the connection is closed, and under `mcp:` answered 408).
 * Where it parses HTTP, a backend it cannot reach is answered too: once the client's request head
 * is in (within the header bound), `502 Bad Gateway`, body `tidegate: backend_failed`, and the
 * connection closed, so the caller learns why without this end's audit log (elsewhere: closed).
 * No bound on the whole duration. `stop` closes the port and leaves connections in
 * flight to finish; `endAll` cuts what is left, each recorded (in-flight.ts).
 */
import type { Audit } from "../audit/sink/audit-log.ts";
import { connAudit, type ConnAudit } from "./conn-audit.ts";
import tls from "node:tls";
import type { Socket, TCPSocketListener } from "bun";
import type { InboundRule } from "../policy/model.ts";
import { parseIp, type IpAddress } from "../policy/address.ts";
import type { Logger } from "../runtime/log.ts";
import { chainPem } from "../x509/pem.ts";
import type { Credential, IdentitySource, TrustNow } from "./identity-source.ts";
import { hex, peerChain, peerLeaf, randomConnectionId, tlsConnectionId } from "./peer-tls.ts";
import { stillAnchored, type PeerVerifier } from "./peer-verifier.ts";
import { encodeProxyV2, ProxyV2Error } from "./proxy-v2.ts";
import { endOf, splice, type Splice } from "./splice.ts";
import { withXfcc, xfccValue, XfccRewriter, type Rewritten } from "./xfcc.ts";
import { type PinStore, SessionLists } from "../mcp/index.ts";
import { closedRule, following, gateRule, openGate } from "./mcp/gate-rule.ts";
import type { SpiffeId } from "../spiffe/index.ts";
import { McpRelay } from "./mcp/relay.ts";
import { refusalResponse, RequestParser, type Header } from "../http1/index.ts";
import { boundsOf, DEFAULT_PROXY_SETTINGS, type ProxySettings } from "../policy/model.ts";
import { InFlight, type Rechecked, type Tracked } from "./in-flight.ts";
import { expiryFields, Watchdog } from "./watchdog.ts";
import { HeadDeadline } from "./head-deadline.ts";

export interface InboundDeps {
  readonly identity: IdentitySource;
  readonly verifier: PeerVerifier;
  readonly logger: Logger;
  /** Each connection's conn_open and conn_close (conn-audit.ts). */
  readonly audit: Audit;
  /** False while the audit log cannot be written and audit.on_failure is refuse: a new connection is closed at once. */
  readonly accepting?: () => boolean;
  /** MCP tool pins (rules with `mcp:`); absent: none are kept. */
  readonly pins?: PinStore;
  /** From accept to a verified client (default HANDSHAKE_TIMEOUT_MS). */
  readonly handshakeTimeoutMs?: number;
  /** The backend leg's bounds in force (`proxy:`); absent: the defaults. */
  readonly timeouts?: () => ProxySettings;
}

/** An address anyone may reach must not let a client hold a connection without a handshake. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
/** TLS 1.3 only (0x0304, BoringSSL's TLS1_3_VERSION): the PROXY header says so, and SVIDs need nothing older. */
export const TLS_1_3 = 0x0304;

type Fields = Record<string, unknown>;

interface Conn {
  started: number;
  events: ConnAudit;
  /** Its record and how the listener may end it (in-flight.ts); `events` is `tracked.events`. */
  tracked: Tracked;
  /** The bounds in force when it arrived. */
  timeouts: ProxySettings;
  /** The handshake deadline, then the backend's; null once forwarding began. */
  timer: ReturnType<typeof setTimeout> | null;
  /** The client as the listener saw it at accept (Bun clears the address at close). */
  client: string;
  /** Client bytes that came before the backend was ready. */
  early: Uint8Array[];
  sp: Splice | null;
  ended: boolean;
  closed: boolean;
  /** The PROXY header's length, which bytes_up leaves out. */
  header: number;
  /** With forward_client_cert: rewrites each request (xfcc.ts). */
  rewriter: XfccRewriter | null;
  /** With the rewriter: the header bound (head-deadline.ts; the relay keeps its own). */
  head: HeadDeadline | null;
  /** With `mcp:`: every request and answer through the MCP gate (mcp/relay.ts). */
  relay: McpRelay | null;
  /** Why the connection was ended while forwarding (a request the rewriter refused). */
  refused: Fields | null;
  /** The client's end was reset (ECONNRESET), not closed in order. */
  reset: boolean;
  /** The backend could not be reached (HTTP rules): reads the request head to answer 502; "answered" once it did. */
  failed: RequestParser | "answered" | null;
}

/** What an HTTP rule's client gets when the backend cannot be reached. */
const BACKEND_FAILED = refusalResponse(502, "backend_failed");

interface BackendData {
  sp: Splice | null;
  relay: McpRelay | null;
  /** The backend reset its end (ECONNRESET) rather than closing it in order. */
  reset: boolean;
}

function tlsOf(c: Credential, t: TrustNow) {
  return { cert: chainPem(c.chain), key: c.keyPem, ca: t.allCaPem };
}

/** How a connection the MCP relay ended is recorded: its bounds as the watchdog's are, anything else refused. */
function relayOutcome(reason: string): string {
  if (reason === "idle_timeout") return "terminated";
  if (reason === "backend_first_byte_timeout") return "backend_failed";
  return "refused";
}

/** Why the rule in force no longer lets a connection go on: `cause` for the log, `message` for a client whose request is refused. */
interface Refusal {
  readonly reason: string;
  readonly cause: string;
  readonly message: string;
}

function refusal(reason: string, cause: string): Refusal {
  return { reason, cause, message: `tidegate: ${cause}; this connection takes no more requests` };
}

/** audit.on_failure refuse: a connection admitted before the log failed carries no request past it, as an intercepted egress one. */
const AUDIT_DOWN = refusal("audit_unavailable", "the audit log cannot be written (audit.on_failure: refuse)");

/**
 * Whether rule `b` carries a connection as `a` did: the same backend, PROXY header, and parsing
 * (`forward_client_cert`, and whether `mcp:` gates it; a changed filter is the relay's business,
 * which decides each message under the rule in force). A reload that changes any of these ends
 * the connections admitted before (`policy_changed`): their bytes would otherwise go on to the old
 * backend, or unparsed and ungated where the rule now wants them rewritten or gated.
 */
function sameTreatment(a: InboundRule, b: InboundRule): boolean {
  if (a === b) return true;
  const f = a.forward;
  const g = b.forward;
  const sameForward = f.kind === "unix" ? g.kind === "unix" && g.path === f.path : g.kind === "tcp" && g.host === f.host && g.port === f.port;
  return sameForward && a.proxyProtocol === b.proxyProtocol && a.forwardClientCert === b.forwardClientCert && (a.mcp === null) === (b.mcp === null);
}

function addressOf(text: string): IpAddress | null {
  try {
    return parseIp(text);
  } catch {
    return null;
  }
}

export class InboundListener {
  private readonly listener: TCPSocketListener<Conn>;
  /** What the listener was started with, and the context for anything newer. */
  private readonly base: { credential: Credential; generation: number };
  private current: { credential: Credential; generation: number; context: unknown } | null = null;

  /** The rule in force; a reload with the same listen address swaps it in place. */
  rule: InboundRule;
  /** Set once the policy no longer has this listener (`remove`): what an MCP conversation still open is told at its next request. */
  private gone: Refusal | null = null;

  private readonly inFlight = new InFlight();
  /** What each MCP session was sent of its lists, shared by this listener's connections (mcp/lists-seen.ts): a session's stream tells its client of changes. */
  private readonly sessions = new SessionLists();

  /** Throws when the address cannot be bound; `credential` is the SVID for rule.id. */
  constructor(rule: InboundRule, credential: Credential, private readonly deps: InboundDeps) {
    this.rule = rule;
    const trust = deps.identity.trust();
    this.base = { credential, generation: trust.generation };
    // minVersion is Bun's (a number), missing from its TLSOptions type.
    const tlsOptions = { ...tlsOf(credential, trust), requestCert: true, rejectUnauthorized: true, minVersion: TLS_1_3 };
    this.listener = Bun.listen<Conn>({
      hostname: rule.listen.host,
      port: rule.listen.port,
      allowHalfOpen: true,
      tls: tlsOptions,
      socket: {
        open: (s) => this.open(s),
        handshake: (s, authorized, error) => {
          if (s.data === undefined) return; // closed at accept (audit log unwritable)
          void this.handshake(s, authorized, error).catch((e: unknown) => this.refuse(s, "internal_error", { detail: e instanceof Error ? e.message : String(e) }));
        },
        data: (s, chunk) => {
          const c = s.data;
          if (c === undefined) return;
          if (c.sp !== null) return this.toBackend(s, c.sp, chunk);
          if (c.failed !== null) return this.failedData(s, chunk);
          c.early.push(new Uint8Array(chunk));
        },
        drain: (s) => s.data?.sp?.down.drain(),
        end: (s) => {
          if (s.data === undefined) return;
          if (s.data.sp !== null) return this.clientEnded(s, s.data.sp);
          s.data.ended = true;
          if (s.data.failed !== null) s.end();
        },
        close: (s, error?: Error) => {
          if (s.data === undefined) return;
          s.data.closed = true;
          s.data.reset = (error as { code?: string } | undefined)?.code === "ECONNRESET";
          if (s.data.timer !== null) clearTimeout(s.data.timer);
          s.data.relay?.gone();
          // a reset before the client's FIN reaches the backend as a reset (splice.ts), not as an orderly end
          s.data.sp?.clientClosed(s.data.reset);
        },
        error() {},
      },
    });
  }

  get listen(): string {
    return `${this.rule.listen.host}:${this.rule.listen.port}`;
  }

  /** Closes the port: a new connection is refused; those in flight go on. */
  stop(): void {
    this.listener.stop(false);
  }

  /** MCP sessions no connection holds, kept for their client to resume (lists-seen.ts). */
  get sessionsWaiting(): number {
    return this.sessions.waiting;
  }

  /** The agent stops: tool calls a session still awaits are logged without an answer now, not when its window would pass. */
  closeSessions(): void {
    this.sessions.close();
  }

  /**
   * The policy no longer has this listener (its rule removed, or its `listen` or `id` changed):
   * the port closes, connections in flight go on, and an MCP conversation among them takes no
   * more requests (each is refused, `rule_removed`).
   */
  remove(): void {
    const r = this.rule;
    this.gone = refusal("rule_removed", `inbound rule ${r.name} on ${this.listen} was removed or changed its listen address or id (a policy reload)`);
    this.stop();
  }

  /** Connections whose conn_close is not written yet. */
  get connections(): number {
    return this.inFlight.size;
  }

  /** Ends every connection still open, each recorded with `fields` (outcome, reason, detail); how many. */
  endAll(fields: Record<string, unknown>): number {
    return this.inFlight.endAll(fields);
  }

  /**
   * After a reload (its rule swapped in, or `remove`) or a bundle change: ends each connection
   * whose client's SVID the bundles in force no longer vouch for (`client_untrusted`), and each
   * whose rule in force now carries it otherwise (`sameTreatment`: `policy_changed`), and each
   * whose bytes pass unparsed (neither `mcp:` nor `forward_client_cert`) once the rule is gone
   * (`rule_removed`) or no longer allows its client (`client_not_allowed`), outcome `terminated`.
   * Where requests are parsed, the next request is refused instead (`admission`).
   */
  recheck(): Promise<Rechecked> {
    return this.inFlight.recheck();
  }

  private fields(s: Socket<Conn>, fields: Fields): Fields {
    return { rule: this.rule.name, listen: this.listen, client: s.data.client, forward: this.forwardText(), proxy_protocol: this.rule.proxyProtocol, ...fields };
  }

  /** The connection's conn_close (after its conn_open, when that was not sent yet). */
  private log(s: Socket<Conn>, fields: Fields): void {
    s.data.events.close(this.fields(s, fields));
  }

  private forwardText(): string {
    const f = this.rule.forward;
    return f.kind === "unix" ? `unix:${f.path}` : `${f.host}:${f.port}`;
  }

  private refuse(s: Socket<Conn>, reason: string, fields: Fields = {}): void {
    if (s.data.timer !== null) clearTimeout(s.data.timer);
    s.data.timer = null;
    this.log(s, { client_id: null, conn_id: hex(tlsConnectionId(s as never) ?? randomConnectionId()), outcome: "refused", reason, ...fields });
    s.end();
  }

  private open(s: Socket<Conn>): void {
    if (this.deps.accepting?.() === false) {
      // The audit log cannot be written (audit.on_failure: refuse): nothing goes unrecorded.
      s.terminate();
      return;
    }
    const started = performance.now();
    const tracked = this.inFlight.open(connAudit(this.deps.audit, "inbound", started), () => s.terminate());
    s.data = { started, events: tracked.events, tracked, timeouts: boundsOf(this.deps.timeouts?.() ?? DEFAULT_PROXY_SETTINGS, this.rule.bounds), timer: null, client: `${s.remoteAddress}:${(s as unknown as { remotePort: number }).remotePort}`, early: [], sp: null, ended: false, closed: false, header: 0, rewriter: null, head: null, relay: null, refused: null, reset: false, failed: null };
    s.data.tracked.fields = this.fields(s, { client_id: null });
    s.data.timer = setTimeout(() => {
      s.data.timer = null;
      this.log(s, { client_id: null, outcome: "refused", reason: "handshake_timeout", detail: `no verified client within ${this.deps.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS} ms` });
      s.terminate();
    }, this.deps.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS);
    const credential = this.deps.identity.svid(this.rule.id.toString());
    const trust = this.deps.identity.trust();
    if (credential === null) return;
    if (credential === this.base.credential && trust.generation === this.base.generation) return;
    if (this.current?.credential !== credential || this.current.generation !== trust.generation) {
      this.current = { credential, generation: trust.generation, context: tls.createSecureContext(tlsOf(credential, trust)).context };
    }
    (s as unknown as { setKeyCert(ctx: unknown): void }).setKeyCert(this.current.context);
  }

  private async handshake(s: Socket<Conn>, authorized: boolean, error: Error | null): Promise<void> {
    s.pause();
    const c = s.data;
    const verified = () => c.timer !== null; // false: the deadline passed and the connection was refused
    if (this.deps.identity.svid(this.rule.id.toString()) === null) return this.refuse(s, "no_svid", { detail: `the agent holds no valid SVID for ${this.rule.id.toString()}` });
    const leaf = peerLeaf(s as never);
    if (leaf === null && peerChain(s as never).length === 0) return this.refuse(s, "client_no_certificate");
    if (!authorized || error !== null) return this.refuse(s, "client_untrusted", { detail: (error as { code?: string } | null)?.code ?? error?.message ?? "not authorized" });
    const trust = this.deps.identity.trust();
    const check = await this.deps.verifier.verifyPeer(s as never, trust.bundles, trust.generation, leaf);
    if (!verified()) return;
    if (!check.ok) return this.refuse(s, "client_untrusted", { detail: check.code, claimed_id: check.claimed });
    const id = check.id;
    if (!this.rule.allow.some((p) => p.matcher.matches(id))) return this.refuse(s, "client_not_allowed", { client_id: id.toString() });
    c.tracked.fields = this.fields(s, { client_id: id.toString() });
    if (s.data.closed) return this.log(s, { client_id: id.toString(), outcome: "client_gone" });
    const connId = tlsConnectionId(s as never) ?? randomConnectionId();
    this.forward(s, id, connId, { anchor: check.anchor, rule: this.rule, generation: trust.generation });
  }

  /** The PROXY v2 header for this connection, or null when its addresses cannot be written. */
  private proxyHeader(s: Socket<Conn>, clientId: string, connId: Uint8Array): Uint8Array | null {
    const sock = s as unknown as { remoteAddress: string; remotePort: number; localAddress: string; localPort: number };
    const source = addressOf(sock.remoteAddress);
    const destination = addressOf(sock.localAddress);
    if (source === null || destination === null) return null;
    try {
      return encodeProxyV2({ source: { address: source, port: sock.remotePort }, destination: { address: destination, port: sock.localPort }, connectionId: connId, spiffeId: clientId });
    } catch (e) {
      if (e instanceof ProxyV2Error) return null;
      throw e;
    }
  }

  /**
   * Why the rule in force no longer lets `client` make requests, or null: asked at each request
   * where requests are parsed (`mcp:`, `forward_client_cert`), so a reload that removes the
   * listener's rule or drops the client from `allow` applies to the next one.
   */
  private admission(client: SpiffeId): () => Refusal | null {
    let seen: object | null = null;
    let why: Refusal | null = null;
    return () => {
      const k = this.gone ?? this.rule;
      if (k !== seen) {
        seen = k;
        if (!("allow" in k)) why = k;
        else why = k.allow.some((p) => p.matcher.matches(client)) ? null : refusal("client_not_allowed", `inbound rule ${k.name} no longer allows ${client.toString()} (a policy reload)`);
      }
      return why;
    };
  }

  /** Client bytes after the backend failed (HTTP rules): once the request head is in (or breaks HTTP/1.1), 502 and close; later bytes are dropped. */
  private failedData(s: Socket<Conn>, chunk: Uint8Array): void {
    const c = s.data;
    if (c.failed === null || c.failed === "answered") return;
    if (!c.failed.push(chunk).some((e) => e.kind === "head" || e.kind === "error")) return;
    c.failed = "answered";
    if (c.timer !== null) clearTimeout(c.timer);
    c.timer = null;
    s.write(BACKEND_FAILED);
    s.end();
  }

  /** Client bytes toward the backend: as they are, or each request rewritten (forward_client_cert). */
  private toBackend(s: Socket<Conn>, sp: Splice, chunk: Uint8Array): void {
    const c = s.data;
    if (c.relay !== null) return c.relay.clientData(chunk);
    if (c.rewriter === null) return sp.up.data(chunk);
    if (c.refused !== null) return;
    this.rewritten(s, sp, c.rewriter.push(chunk));
    c.head?.update(c.refused === null && c.rewriter.awaitingHead);
  }

  private clientEnded(s: Socket<Conn>, sp: Splice): void {
    const c = s.data;
    if (c.relay !== null) return c.relay.clientEnd();
    c.head?.stop();
    if (c.rewriter !== null && c.refused === null) this.rewritten(s, sp, c.rewriter.finish());
    sp.up.ended();
  }

  private rewritten(s: Socket<Conn>, sp: Splice, r: Rewritten): void {
    for (const out of r.out) sp.up.data(out);
    if (r.refused === null) return;
    s.data.refused = { outcome: "refused", ...r.refused };
    sp.clientClosed();
    s.end();
  }

  /**
   * The MCP gate of one connection, between the splice and the sockets (`mcp:`). Each message is
   * decided under the rule in force then: a reload that narrows the rule's `mcp:`, drops the
   * client from its `allow`, or removes the rule applies to the conversation's next request.
   */
  private relayFor(sp: Splice, client: SpiffeId, connId: string, t: ProxySettings): McpRelay {
    const rule = this.rule;
    const clientId = client.toString();
    const admitted = this.admission(client);
    // admitted() answers for the same object: the rule in force while it admits the client, `gone` once removed.
    const followed = following(
      () => this.gone ?? this.rule,
      () => {
        const no = admitted();
        return no === null ? gateRule(this.rule) : closedRule(rule.name, no.reason, no.message);
      },
    );
    const unrecorded = closedRule(rule.name, AUDIT_DOWN.reason, AUDIT_DOWN.message);
    const current = () => (this.deps.accepting?.() === false ? unrecorded : followed());
    const gate = openGate(current, { caller: clientId, server: rule.id.toString(), connId }, this.deps.audit, this.deps.pins ?? null, { announcesLists: true, sessions: this.sessions });
    const xfcc = rule.forwardClientCert ? xfccValue(rule.id.toString(), clientId) : null;
    const rewrite = (h: { headers: { entries: readonly Header[] } }): readonly Header[] => (xfcc === null ? h.headers.entries : withXfcc(h.headers.entries, xfcc));
    return new McpRelay(gate, rewrite, { toBackend: (b) => sp.up.data(b), toClient: (b) => sp.down.data(b), endBackend: () => sp.up.ended(), endClient: () => sp.down.ended() }, { firstByteMs: t.firstByteTimeoutMs, idleMs: t.idleTimeoutMs, headerMs: t.headerTimeoutMs });
  }

  /** `seen`: the authority that vouched for the client, and the rule and bundle generation it was admitted under. */
  private forward(s: Socket<Conn>, client: SpiffeId, connId: Uint8Array, seen: { anchor: Uint8Array; rule: InboundRule; generation: number }): void {
    const c = s.data;
    const clientId = client.toString();
    const base: Fields = { client_id: clientId, conn_id: hex(connId) };
    const f = this.rule.forward;
    const header = this.rule.proxyProtocol ? this.proxyHeader(s, clientId, connId) : null;
    if (this.rule.proxyProtocol && header === null) {
      this.log(s, { ...base, outcome: "refused", reason: "proxy_header_failed", detail: "the connection's addresses cannot be written in a PROXY v2 header" });
      s.end();
      return;
    }
    const begin = (b: Socket<BackendData>) => {
      if (gaveUp || c.closed) {
        if (!gaveUp) this.log(s, { ...base, outcome: "client_gone" });
        gaveUp = true;
        b.end();
        return;
      }
      if (c.timer !== null) clearTimeout(c.timer);
      c.timer = null;
      c.events.open(this.fields(s, base));
      const t = c.timeouts;
      // Under mcp: the relay bounds each request's answer itself (it answers 504); else the watchdog.
      const watch = this.rule.mcp !== null ? null : new Watchdog(t, (why) => void this.inFlight.end(c.tracked, expiryFields(why, t, "backend")));
      const sp = splice(
        endOf(s as Socket<unknown>),
        endOf(b as Socket<unknown>),
        () => {
          watch?.stop();
          c.head?.stop();
          this.log(s, {
            ...base,
            outcome: "forwarded",
            ...(c.rewriter !== null ? { requests: c.rewriter.requests } : {}),
            ...(c.reset ? { outcome: "client_gone", detail: "the client reset its connection" } : b.data.reset ? { outcome: "backend_failed", detail: "the backend reset its connection" } : {}),
            ...(c.relay !== null ? { requests: c.relay.count, ...(c.relay.announced > 0 ? { lists_announced: c.relay.announced } : {}), ...(c.relay.refused !== null ? { outcome: relayOutcome(c.relay.refused.reason), ...c.relay.refused } : {}) } : {}),
            ...c.refused,
            bytes_up: sp.bytesUp() - c.header,
            bytes_down: sp.bytesDown(),
          });
        },
        watch,
      );
      c.sp = sp;
      b.data.sp = sp;
      c.tracked.control = { drain() {}, cut: () => sp.abort() };
      // Asked again after each reload or bundle change (`recheck`), and here, before any byte goes
      // to the backend, for one admitted under a rule or bundles that changed while the backend
      // was being connected: every connection, whether the authority that vouched for its client
      // is still trusted and its rule still carries it as before; one whose bytes pass unparsed,
      // whether the rule still admits its client too (where requests are parsed, each request
      // asks that itself).
      const parsed = this.rule.mcp !== null || this.rule.forwardClientCert;
      const admitted = parsed ? null : this.admission(client);
      const recheck = (): Fields | null => {
        if (!stillAnchored(this.deps.identity.trust().bundles, client, seen.anchor)) return { outcome: "terminated", reason: "client_untrusted", detail: `the bundles in force no longer hold the authority that vouched for ${clientId} (a bundle change)` };
        if (this.gone === null && !sameTreatment(seen.rule, this.rule)) {
          return { outcome: "terminated", reason: "policy_changed", detail: `inbound rule ${this.rule.name} now forwards, parses or gates its connections otherwise (a policy reload)` };
        }
        const no = admitted?.() ?? null;
        return no === null ? null : { outcome: "terminated", reason: no.reason, detail: no.cause };
      };
      c.tracked.recheck = recheck;
      if (this.rule !== seen.rule || this.gone !== null || this.deps.identity.trust().generation !== seen.generation) {
        const why = recheck();
        // What the client sent meanwhile stays unsent: ended before its first byte is forwarded.
        if (why !== null) return void this.inFlight.end(c.tracked, why);
      }
      if (header !== null) {
        c.header = header.length;
        sp.up.data(header);
      }
      if (this.rule.mcp !== null) c.relay = b.data.relay = this.relayFor(sp, client, hex(connId), t);
      else if (this.rule.forwardClientCert) {
        const admitted = this.admission(client);
        const rewriter = (c.rewriter = new XfccRewriter(this.rule.id.toString(), clientId, () => {
          const no = this.deps.accepting?.() === false ? AUDIT_DOWN : admitted();
          return no === null ? null : { reason: no.reason, detail: no.message };
        }));
        const head = (c.head = new HeadDeadline(t.headerTimeoutMs, () => {
          if (c.refused === null && rewriter.awaitingHead) this.rewritten(s, sp, { out: [], refused: head.fields() });
        }));
        head.update(true);
      }
      for (const chunk of c.early) this.toBackend(s, sp, chunk);
      c.early = [];
      if (c.closed) sp.clientClosed(c.reset);
      else if (c.ended) this.clientEnded(s, sp);
      s.resume();
    };
    let gaveUp = false;
    const backendFailed = (detail: string, reason: string | null = null) => {
      if (gaveUp) return;
      gaveUp = true;
      if (c.timer !== null) clearTimeout(c.timer);
      c.timer = null;
      this.log(s, { ...base, outcome: "backend_failed", ...(reason !== null ? { reason } : {}), detail });
      if (this.rule.mcp === null && !this.rule.forwardClientCert) return void s.end();
      c.failed = new RequestParser();
      for (const chunk of c.early.splice(0)) this.failedData(s, chunk);
      if ((c.failed as Conn["failed"]) === "answered") return;
      if (c.ended || c.closed) return void s.end();
      c.timer = setTimeout(() => s.end(), c.timeouts.headerTimeoutMs);
      s.resume(); // paused since its handshake
    };
    if (c.timer !== null) clearTimeout(c.timer);
    const connectMs = c.timeouts.connectTimeoutMs;
    c.timer = setTimeout(() => backendFailed(`no connection to the backend within ${connectMs} ms`, "backend_connect_timeout"), connectMs);
    const where = f.kind === "unix" ? { unix: f.path } : { hostname: f.host, port: f.port };
    Bun.connect<BackendData>({
      ...where,
      allowHalfOpen: true,
      data: { sp: null, relay: null, reset: false },
      socket: {
        open: begin,
        data: (b, chunk) => (b.data.relay !== null ? b.data.relay.backendData(chunk) : b.data.sp?.down.data(chunk)),
        drain: (b) => b.data.sp?.up.drain(),
        end: (b) => (b.data.relay !== null ? b.data.relay.backendEnd() : b.data.sp?.down.ended()),
        close: (b, error?: Error) => {
          b.data.reset = (error as { code?: string } | undefined)?.code === "ECONNRESET";
          b.data.relay?.gone();
          // a reset before the backend's FIN reaches the client as a reset, so a cut answer never looks whole
          b.data.sp?.upstreamClosed(b.data.reset);
        },
        connectError: (_b, e) => backendFailed(e.message),
        error() {},
      },
    } as Parameters<typeof Bun.connect<BackendData>>[0]).catch((e: unknown) => backendFailed(e instanceof Error ? e.message : String(e)));
  }
}
