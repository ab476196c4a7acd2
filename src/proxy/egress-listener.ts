/**
 * The egress listener (DESIGN.md section 3, steps 3 to 5): where the kernel sends every TCP
 * connection of a managed workload that no kernel rule decides. It listens on loopback, IPv4 and
 * IPv6, on a port below 1024 so no unprivileged process can take it while the agent is down.
 *
 * For each connection, guaranteed and in this order:
 * 1. the caller is found from the kernel's record, by the cookie of the peer's socket, which the
 *    kernel gives for the connection's addresses and ports (never from anything the workload
 *    sends); no record: refused (`no_record`);
 * 2. the caller is identified: its cgroup's workload, and the process attested against that
 *    workload's identity; no identity, or another one than the cgroup's: refused;
 * 3. the first bytes are read (at most PEEK_TIMEOUT_MS for protocols where the server speaks
 *    first) for the name they give: a TLS ClientHello's SNI or an HTTP request's Host (peek/);
 *    bytes that start like TLS or HTTP and then break the protocol are refused;
 * 4. the policy decides on the original destination and that name; an allow by a host rule holds
 *    only if the original address is one the name resolves to (`admit`, where bytes go);
 * 5. `passthrough` (and `direct` when an earlier rule kept it out of the kernel) connect to the
 *    original address (on `upstream.port` when set) and splice the bytes, the peeked ones first;
 *    `tls` wraps what a workload sends in plaintext in TLS to that address, verified against the
 *    system roots or the rule's `ca` file and the name the connection gave (a workload that sends
 *    TLS itself is refused: no TLS in TLS); `mtls` does the same with the workload's X.509-SVID
 *    and forwards only to a peer whose chain tidegate's verifier accepts as `server_id`
 *    (upstream.ts); `intercept` (and `inspect`, a rule with http conditions) hands the connection
 *    to intercept/serve.ts, which decides, rewrites and re-originates every HTTP request on it.
 * A connection refused at steps 3 and 4 whose first bytes were a whole plain HTTP request head is
 * answered before it is closed (`refusalResponse`): `403` with the body `tidegate: REASON` for a
 * policy refusal, `400` for a head that breaks HTTP/1.1, `502` for a name that could not be
 * looked up; the workload learns it was refused and why, instead of a reset. A TLS or raw one is
 * closed: there is nothing it would read.
 * Every connection has a conn_open and a conn_close audit event (conn-audit.ts) with the process
 * identity, the decision, a connection id (for TLS legs the exporter value the far end computes
 * alike, peer-tls.ts) and, for a forwarded one, the upstream, the peer's SPIFFE ID, bytes each way
 * and duration. While the audit log cannot be written (audit.on_failure: refuse, `accepting`),
 * a new connection is closed at once.
 *
 * Bounds (`proxy:`, read when a connection arrives): the upstream leg must be ready within the
 * connect bound (upstream.ts, `upstream_connect_timeout`); then, while forwarding, the first-byte
 * and idle bounds of watchdog.ts (`upstream_first_byte_timeout`, `idle_timeout`), for
 * intercepted connections per request (intercept/exchange.ts). A connection the proxy ends is
 * reset both ways and recorded with its reason. No bound on the whole duration.
 *
 * A reload, a registration change or a bundle change (`recheck`, which the agent calls after
 * each): a spliced connection, and an intercepted one's tunnel after a protocol switch, is decided
 * again and cut if it no longer holds (`recheckConnection`); intercepted requests are decided one
 * by one anyway.
 *
 * Stopping (`stopAccepting`, then `endAll`): the port is closed, so the kernel refuses a new
 * connection from a managed workload (the capture still sends it here: nothing goes direct);
 * connections in flight go on, an intercepted one ends after the answer in progress; what is
 * still open at the agent's drain deadline is cut and recorded (in-flight.ts).
 */
import type { Audit } from "../audit/sink/audit-log.ts";
import { connAudit } from "./conn-audit.ts";
import type { Socket } from "bun";
import type { IpAddress } from "../policy/address.ts";
import { parseIp, reachedAddress } from "../policy/address.ts";
import type { PolicyEngine } from "../policy/engine.ts";
import { admit } from "../policy/destination.ts";
import type { NameCache } from "../policy/name-cache.ts";
import { describeDecision, type Decision } from "../policy/query.ts";
import type { SpiffeId } from "../spiffe/index.ts";
import type { Logger } from "../runtime/log.ts";
import { TidegateError } from "../errors.ts";
import { GrowingBytes } from "./peek/growing-bytes.ts";
import { MAX_PEEK_BYTES, PeekError, Peeker, type PeekResult } from "./peek/peek.ts";
import { endOf, splice, type Splice } from "./splice.ts";
import type { IdentitySource } from "./identity-source.ts";
import { hex } from "./peer-tls.ts";
import { PeerVerifier, stillAnchored } from "./peer-verifier.ts";
import { SessionCache } from "./session-cache.ts";
import { openUpstream, type UpstreamTls } from "./upstream.ts";
import { readCaFile, type CaFile } from "./ca-file.ts";
import { serveIntercept, type InterceptDeps } from "./intercept/serve.ts";
import { boundsOf, DEFAULT_PROXY_SETTINGS, type KeyExchange, type ProxySettings } from "../policy/model.ts";
import { InFlight, type Rechecked, type Tracked } from "./in-flight.ts";
import { refusalResponse } from "../http1/index.ts";
import { expiryFields, Watchdog } from "./watchdog.ts";

export const PEEK_TIMEOUT_MS = 300;

/** What the kernel recorded at connect (bpf/tidegate.h, `struct tg_record`). */
export interface CaptureRecord {
  readonly address: IpAddress;
  readonly port: number;
  readonly proto: "tcp" | "udp";
  readonly pid: number;
  readonly tgid: number;
  readonly uid: number;
  readonly gid: number;
  readonly cgroupId: bigint;
  /**
   * When the caller's process started, in clock ticks after boot as /proc/PID/stat field 22 shows
   * it to the agent (`start_ns`); absent when not known. Attestation is bound to it.
   */
  readonly startTime?: number;
}

export type Identified =
  | { readonly ok: true; readonly id: SpiffeId; readonly workload: string }
  | { readonly ok: false; readonly workload: string | null; readonly reason: string; readonly detail: string };

export interface EgressDeps {
  /** The record for a connection from `peer` (as the listener sees it) to `local` (the listener's end), or null. */
  lookupRecord(peer: { address: IpAddress; port: number }, local: { address: IpAddress; port: number }): CaptureRecord | null;
  identify(record: CaptureRecord): Promise<Identified>;
  /** The engine of the policy in force; null before the first good policy (everything refused). */
  engine(): PolicyEngine | null;
  /** Resolves rule host names (the policy's dns: setting). */
  names(): Pick<NameCache, "resolve">;
  /** SVIDs and bundles for `mtls`; absent: mtls rules are refused (`no_svid`). */
  identity?: IdentitySource;
  /** Leaves of the interception CA and the secrets to inject; absent: intercept is refused. */
  intercept?: InterceptDeps;
  logger: Logger;
  /** Where each connection's conn_open and conn_close go (and intercepted requests' http_request). */
  audit: Audit;
  /** False while the audit log cannot be written and `audit.on_failure` is refuse: new connections are closed at once. */
  accepting?(): boolean;
  /** The bounds in force (`proxy:`); absent: the defaults. */
  timeouts?(): ProxySettings;
  /** Whether `workload` still has identity `id` (its text) under the registration in force (an intercepted connection asks at each request); absent: not asked. */
  stillIdentified?(workload: string, id: string): boolean;
}

export interface EgressListener {
  readonly port: number;
  /** Closes the port (a new connection is refused); those in flight go on, intercepted ones to the end of the answer in progress. */
  stopAccepting(): void;
  /** Connections whose conn_close is not written yet. */
  inFlight(): number;
  /** Ends every connection still open, each recorded with `fields` (outcome, reason, detail); how many. */
  endAll(fields: Record<string, unknown>): number;
  /** Closes the port and every connection at once. */
  stop(): void;
  /**
   * Decides again every connection whose bytes pass unparsed (a splice; an intercepted one after a
   * protocol switch) under the registration and policy in force, and ends each that no longer
   * holds (`recheckConnection`); the agent calls it after a good policy load and when its entries
   * or its bundles change. Intercepted requests need none: each is decided as it comes.
   */
  recheck(): Promise<Rechecked>;
}

type Fields = Record<string, unknown>;

/** Who is calling (steps 1 and 2); exported for tests. */
export async function identifyCaller(peer: { address: IpAddress; port: number }, local: { address: IpAddress; port: number }, deps: EgressDeps): Promise<{ fields: Fields; record: CaptureRecord; id: SpiffeId } | { fields: Fields; refused: string }> {
  const base = { peer: `${peer.address.text}:${peer.port}` };
  const recorded = deps.lookupRecord(peer, local);
  if (recorded === null) return { fields: { ...base, outcome: "refused", reason: "no_record" }, refused: "no_record" };
  // Decided, and forwarded, as where it goes: a dialled 0.0.0.0 or :: is this host's loopback.
  // The audit's dst keeps what was dialled; its upstream says where the bytes went.
  const reached = reachedAddress(recorded.address);
  const record = reached === recorded.address ? recorded : { ...recorded, address: reached };
  const who = await deps.identify(record);
  const fields = { ...base, dst: recorded.address.text, dst_port: record.port, pid: record.tgid, tid: record.pid, uid: record.uid, gid: record.gid, cgroup_id: record.cgroupId.toString(), workload: who.workload };
  if (!who.ok) return { fields: { ...fields, outcome: "refused", reason: who.reason, detail: who.detail }, refused: who.reason };
  return { fields: { ...fields, spiffe_id: who.id.toString() }, record, id: who.id };
}

/** What the upstream leg must be (step 5), before the agent's SVIDs and files are looked up. */
export type LegSpec =
  /** serverName: SNI and the name the certificate must carry (null: the address itself); caFile: instead of the system roots. */
  | { readonly kind: "tls"; readonly serverName: string | null; readonly caFile: string | null; readonly keyExchange?: KeyExchange }
  | { readonly kind: "mtls"; readonly serverName: string | null; readonly serverId: SpiffeId; readonly keyExchange?: KeyExchange };

/** The decision for an identified caller and the name its first bytes gave (steps 3 and 4). */
export async function decideConnection(
  caller: { record: CaptureRecord; id: SpiffeId },
  name: string | null,
  deps: EgressDeps,
  sent: PeekResult["kind"] = "other",
): Promise<{ decision: Decision | null; upstream: { address: IpAddress; port: number } | null; tls: LegSpec | null; intercept?: true; fields: Fields }> {
  const engine = deps.engine();
  if (engine === null) return { decision: null, upstream: null, tls: null, fields: { outcome: "refused", reason: "no_policy" } };
  const q = { from: caller.id, proto: "tcp" as const, port: caller.record.port, address: caller.record.address, name };
  let decision = engine.decide(q);
  let upstream: { address: IpAddress; port: number } | null = null;
  let detail: string | undefined;
  try {
    const admitted = await admit(decision, q, deps.names());
    decision = admitted.decision;
    upstream = admitted.upstream;
    if (admitted.upstream === null) detail = admitted.detail;
  } catch (e) {
    if (!(e instanceof TidegateError)) throw e;
    return { decision, upstream: null, tls: null, fields: { name, decision: "deny", rule: decision.rule?.name ?? null, outcome: "refused", reason: "dns_failed", detail: e.message } };
  }
  const fields: Fields = { name, decision: decision.verdict, rule: decision.rule?.name ?? null, summary: describeDecision(decision) };
  const refused = (reason: string, extra: Fields = {}) => ({ decision, upstream: null, tls: null, fields: { ...fields, ...extra, outcome: "refused", reason } });
  if (decision.verdict === "deny") return refused(decision.reason, detail !== undefined ? { detail } : {});
  if (decision.verdict === "inspect" || decision.action === "intercept") {
    // Decided per request (intercept/): the connection-level upstream is not used.
    if (sent === "other") return refused("not_http", { action: "intercept" });
    return { decision, upstream: null, tls: null, intercept: true, fields: { ...fields, action: "intercept" } };
  }
  const serverName = decision.rule.to.kind === "host" ? name : null;
  if (decision.action === "tls" || decision.action === "mtls") {
    if (sent === "tls") return refused("tls_in_tls", { action: decision.action });
    const keyExchange = decision.rule.keyExchange;
    const tls: LegSpec = decision.action === "tls" ? { kind: "tls", serverName, caFile: decision.rule.ca, keyExchange } : { kind: "mtls", serverName, serverId: decision.rule.serverId!, keyExchange };
    return { decision, upstream, tls, fields: { ...fields, action: decision.action } };
  }
  if (decision.action !== "passthrough" && decision.action !== "direct") return refused(`${decision.action}_not_implemented`, { action: decision.action });
  return { decision, upstream, tls: null, fields: { ...fields, action: decision.action } };
}

type Decided = Awaited<ReturnType<typeof decideConnection>>;

/**
 * What a decided connection is given, as one comparable text: the action, where its bytes go, and
 * its leg's TLS terms. `direct` is `passthrough` here: through the proxy both pass the bytes as
 * they are to the same address (the kernel lets a direct rule's new connections by the proxy).
 */
function treatment(d: Decided): string {
  const t = d.tls;
  const leg = t === null ? null : [t.kind, t.serverName, t.kind === "tls" ? t.caFile : t.serverId.toString(), t.keyExchange ?? null];
  const action = d.intercept === true ? "intercept" : d.fields.action === "direct" ? "passthrough" : (d.fields.action ?? null);
  return JSON.stringify([action, d.upstream === null ? null : `${d.upstream.address.text}|${d.upstream.port}`, leg]);
}

/**
 * Why a spliced connection (`passthrough`, `direct`, `tls`, `mtls`), decided `was` for `caller` on
 * the name its first bytes gave, no longer holds under the registration and policy in force, or
 * null. The agent asks after every good policy load and every change of the entries or the
 * bundles it holds, so that a reload, a registration change or a bundle change reaches a
 * connection already open (docs/proxy.md, "A reload"). Ended, with outcome `terminated`:
 * - `identity_revoked`: its workload no longer has the identity the connection was opened under;
 * - `peer_untrusted` (an `mtls` leg, `peer`): the bundles in force no longer hold the authority
 *   that vouched for the upstream's SVID (a CA rotated out, a federation dropped);
 * - `policy_changed` (only when `policy`: the policy is not the one it was last decided under):
 *   the policy in force refuses it, or would give it another treatment (another action, upstream
 *   address or port, server name, `server_id`, `ca` file or key exchange); the detail says what
 *   the policy decides now.
 * A look-up that fails (`dns_failed`) says nothing about the address the connection was admitted
 * to: the connection is left as it is.
 */
export async function recheckConnection(
  caller: { record: CaptureRecord; id: SpiffeId; workload: string | null },
  name: string | null,
  sent: PeekResult["kind"],
  was: Decided,
  deps: EgressDeps,
  policy = true,
  peer: { readonly id: SpiffeId; readonly anchor: Uint8Array } | null = null,
): Promise<Fields | null> {
  const idText = caller.id.toString();
  if (caller.workload !== null && deps.stillIdentified !== undefined && !deps.stillIdentified(caller.workload, idText)) {
    return { outcome: "terminated", reason: "identity_revoked", detail: `workload ${caller.workload} no longer has identity ${idText} (its registration changed)` };
  }
  if (peer !== null && deps.identity !== undefined && !stillAnchored(deps.identity.trust().bundles, peer.id, peer.anchor)) {
    return { outcome: "terminated", reason: "peer_untrusted", detail: `the bundles in force no longer hold the authority that vouched for the upstream ${peer.id.toString()} (a bundle change)` };
  }
  if (!policy) return null;
  const now = await decideConnection(caller, name, deps, sent);
  if (now.fields.reason === "dns_failed") return null;
  const summary = String(now.fields.summary ?? "no policy is loaded");
  if (now.upstream === null && now.intercept !== true) {
    return { outcome: "terminated", reason: "policy_changed", detail: `a policy reload: the policy in force now refuses it (${String(now.fields.reason)}: ${summary})` };
  }
  if (treatment(now) === treatment(was)) return null;
  return { outcome: "terminated", reason: "policy_changed", detail: `a policy reload: the policy in force now decides ${now.intercept === true ? `intercept by rule ${String(now.fields.rule)}` : summary}, where this connection was given ${String(was.fields.summary)}` };
}

function nameOf(r: PeekResult): string | null {
  if (r.kind === "tls") return r.serverName;
  if (r.kind === "http") return r.host;
  return null;
}

/** The TLS of an upstream leg for `spec`, with the caller's SVID and the bundles for mtls, or why not. */
export function legTlsOf(spec: LegSpec, callerId: SpiffeId, deps: EgressDeps): UpstreamTls | { refused: string; detail: string } {
  // one object per leg asked for (the intercepting proxy asks on every request): no spread
  const classical = spec.keyExchange === "classical";
  if (spec.kind === "tls") {
    let ca: CaFile | null = null;
    if (spec.caFile !== null) {
      try {
        ca = readCaFile(spec.caFile);
      } catch (e) {
        return { refused: "ca_unreadable", detail: `${spec.caFile}: ${(e as { code?: string }).code ?? String(e)}` };
      }
    }
    return withKeyExchange({ kind: "tls", serverName: spec.serverName, ca }, classical);
  }
  const credential = deps.identity?.svid(callerId.toString()) ?? null;
  if (credential === null) return { refused: "no_svid", detail: `the agent holds no valid SVID for ${callerId.toString()}` };
  const trust = deps.identity!.trust();
  const caPem = trust.caPem(spec.serverId.trustDomain);
  if (caPem === null) return { refused: "no_bundle", detail: `no bundle for trust domain ${spec.serverId.trustDomain.name}` };
  return withKeyExchange({ kind: "mtls", serverName: spec.serverName, serverId: spec.serverId, credential, trust, caPem }, classical);
}

/** `tls` with `keyExchange: "classical"` when asked; the hybrid default is left unnamed (upstream.ts). */
function withKeyExchange<T extends UpstreamTls>(tls: T, classical: boolean): T {
  if (classical) (tls as { keyExchange?: KeyExchange }).keyExchange = "classical";
  return tls;
}

interface Conn {
  /** Its events, how the proxy may end it, what is known of it (in-flight.ts). */
  tracked: Tracked;
  /** The bounds in force when it arrived. */
  timeouts: ProxySettings;
  /** What the workload sent before the splice: the peeked bytes, then what came while deciding. */
  buf: GrowingBytes;
  /** Reads `buf` for the name as it grows, each byte once (peek.ts). */
  peeker: Peeker;
  /** Resolves when the first bytes decide (or the timeout passes). */
  peeked: ReturnType<typeof Promise.withResolvers<PeekResult | PeekError>>;
  settled: boolean;
  timer: ReturnType<typeof setTimeout> | null;
  sp: Splice | null;
  /** The client sent FIN, or closed, before the splice began. */
  ended: boolean;
  closed: boolean;
  /** The workload's end was reset (ECONNRESET), not closed in order. */
  reset: boolean;
}

export function startEgressListener(port: number, deps: EgressDeps): EgressListener {
  const legDeps = { sessions: new SessionCache(), verifier: new PeerVerifier() };
  const settle = (c: Conn, r: PeekResult | PeekError) => {
    if (c.settled) return;
    c.settled = true;
    if (c.timer !== null) clearTimeout(c.timer);
    c.peeked.resolve(r);
  };
  const tryPeek = (c: Conn) => {
    if (c.settled) return;
    try {
      const r = c.peeker.next(c.buf.view());
      if (r.kind !== "need_more") settle(c, r);
    } catch (e) {
      if (e instanceof PeekError) settle(c, e);
      else throw e;
    }
  };
  const inFlight = new InFlight();
  const serve = async (socket: Socket<Conn>) => {
    const c = socket.data;
    const events = c.tracked.events;
    const log = (fields: Fields) => events.close(fields);
    let peer: IpAddress;
    let local: IpAddress;
    try {
      peer = parseIp(socket.remoteAddress);
      local = parseIp(socket.localAddress);
    } catch {
      log({ outcome: "refused", reason: "bad_peer", peer: socket.remoteAddress });
      socket.end();
      return;
    }
    const caller = await identifyCaller({ address: peer, port: (socket as unknown as { remotePort: number }).remotePort }, { address: local, port: socket.localPort }, deps);
    if ("refused" in caller) {
      log(caller.fields);
      socket.end();
      return;
    }
    c.tracked.fields = caller.fields;
    c.timer = setTimeout(() => settle(c, { kind: "other" }), PEEK_TIMEOUT_MS);
    tryPeek(c);
    const first = await c.peeked.promise;
    if (first instanceof PeekError) {
      log({ ...caller.fields, outcome: "refused", reason: first.code, detail: first.message });
      if (first.code.startsWith("peek_http_")) socket.write(refusalResponse(400, first.code));
      socket.end();
      return;
    }
    if (first.kind === "other" && (c.closed || (c.ended && c.buf.length === 0))) {
      // It went away without a byte (a client probing the address), or closed before its first
      // bytes gave a name: nothing to decide, and nothing could be forwarded. (A client that only
      // ended its side after some bytes is decided: a raw protocol may send, then wait.)
      log({ ...caller.fields, outcome: "client_gone", detail: c.buf.length === 0 ? "closed before sending anything" : `closed after ${c.buf.length} bytes, before they gave a name (SNI or Host)` });
      socket.end();
      return;
    }
    let under = deps.engine();
    const d = await decideConnection(caller, nameOf(first), deps, first.kind);
    c.tracked.fields = { ...caller.fields, ...d.fields };
    if (d.intercept === true && !c.closed) {
      // The top-level bounds: each request takes its own rule's over them (exchange.ts `boundsFor`).
      await serveIntercept({ socket: socket as Socket<unknown>, conn: c, early: c.buf.copy(), first, caller, fields: { ...caller.fields, ...d.fields }, deps: { ...deps, timeouts: () => c.timeouts }, upstream: { ...legDeps, timeoutMs: c.timeouts.connectTimeoutMs }, events, legTls: (spec) => legTlsOf(spec, caller.id, deps) });
      if (inFlight.draining) c.tracked.control?.drain(); // it began forwarding after the drain was asked
      return;
    }
    if (d.upstream === null || c.closed) {
      log({ ...caller.fields, ...d.fields, ...(c.closed && d.upstream !== null ? { outcome: "client_gone" } : {}) });
      if (first.kind === "http" && !c.closed && d.fields.outcome === "refused" && typeof d.fields.reason === "string") socket.write(refusalResponse(d.fields.reason === "dns_failed" ? 502 : 403, d.fields.reason));
      socket.end();
      return;
    }
    const upstream = d.upstream;
    // The rule's own bounds from here on: its leg's connect, first byte and idle.
    c.timeouts = boundsOf(c.timeouts, d.decision?.rule?.bounds ?? null);
    const done = (extra: Fields) => log({ ...caller.fields, ...d.fields, upstream: `${upstream.address.text}:${upstream.port}`, ...extra });
    const refuse = (extra: Fields) => {
      done({ outcome: "refused", ...extra });
      socket.end();
    };
    let leg: UpstreamTls | null = null;
    if (d.tls !== null) {
      const made = legTlsOf(d.tls, caller.id, deps);
      if ("refused" in made) return refuse({ reason: made.refused, detail: made.detail });
      leg = made;
    }
    if (c.closed) return done({ outcome: "client_gone" });
    const up = await openUpstream({ address: upstream.address, port: upstream.port, tls: leg }, { ...legDeps, timeoutMs: c.timeouts.connectTimeoutMs });
    if (!up.ok) {
      const extra: Fields = { outcome: up.outcome, ...(up.reason !== null ? { reason: up.reason } : {}), detail: up.detail, ...(up.peerId !== null ? { peer_id: up.peerId } : {}), ...(up.claimedId !== null ? { claimed_id: up.claimedId } : {}), ...(up.connId !== null ? { conn_id: hex(up.connId) } : {}) };
      done(extra);
      socket.end();
      return;
    }
    const upSocket = up.socket;
    const legFields: Fields = { conn_id: hex(up.connId), ...(up.peerId !== null ? { peer_id: up.peerId } : {}), ...(up.resumed !== null ? { resumed: up.resumed } : {}) };
    if (c.tracked.ended !== null) return void upSocket.terminate(); // cut (the drain's deadline) while the leg was being made: recorded
    events.open({ ...caller.fields, ...d.fields, upstream: `${upstream.address.text}:${upstream.port}`, ...legFields });
    // Asked again after a reload, a registration change or a bundle change; the policy part only
    // under a policy it was not decided under.
    const checked = { record: caller.record, id: caller.id, workload: typeof caller.fields.workload === "string" ? caller.fields.workload : null };
    const [name, sent, upPeer] = [nameOf(first), first.kind, up.peer ?? null];
    const recheck = () => {
      const engine = deps.engine();
      const changed = engine !== under;
      under = engine;
      return recheckConnection(checked, name, sent, d, deps, changed, upPeer);
    };
    // One whose terms changed while it was decided or its leg was being made is asked here, before
    // the splice: what the workload sent (and sends meanwhile) waits in c.buf, what the upstream
    // sent in its early, so a connection the check ends forwards nothing. The check may look a
    // name up; a change during it is asked again.
    let generation = leg?.kind === "mtls" ? leg.trust.generation : null;
    for (;;) {
      const nowGeneration = generation !== null ? deps.identity!.trust().generation : null;
      const revoked = checked.workload !== null && deps.stillIdentified?.(checked.workload, caller.id.toString()) === false;
      if (nowGeneration === generation && deps.engine() === under && !revoked) break;
      generation = nowGeneration;
      upSocket.pause(); // a server that speaks first waits too, else its early list would grow for the whole check (resumed below)
      let why: Fields | null = null;
      try {
        why = await recheck();
      } catch (e) {
        deps.logger.error("recheck_failed", { error: e instanceof Error ? e.message : String(e) }); // left as it is, as a recheck that throws
        break;
      }
      if (c.tracked.ended !== null) break;
      if (why !== null) {
        c.tracked.fields = { ...caller.fields, ...d.fields, upstream: `${upstream.address.text}:${upstream.port}`, ...legFields };
        inFlight.end(c.tracked, why);
        upSocket.terminate();
        return;
      }
    }
    if (c.tracked.ended !== null) return void upSocket.terminate();
    const t = c.timeouts;
    const watch = new Watchdog(t, (why) => void inFlight.end(c.tracked, expiryFields(why, t, "upstream")));
    const sp = splice(
      endOf(socket as Socket<unknown>),
      endOf(upSocket as Socket<unknown>),
      () => {
        watch.stop();
        // A workload that reset its end mid-stream: what it was sending or getting may be cut.
        // An upstream that reset it: what the workload got may be cut (it got a reset too).
        const reset = c.reset ? { outcome: "client_gone", detail: "the workload reset its connection" } : upSocket.data.reset ? { outcome: "upstream_failed", detail: "the upstream reset its connection" } : {};
        done({ ...legFields, outcome: "forwarded", ...reset, bytes_up: sp.bytesUp(), bytes_down: sp.bytesDown() });
      },
      watch,
    );
    upSocket.data.sp = sp;
    c.sp = sp;
    // A splice has no request boundary: a drain waits for it to end, or cuts it at the deadline.
    c.tracked.control = { drain() {}, cut: () => sp.abort() };
    c.tracked.recheck = recheck;
    const early = c.buf.copy();
    c.buf = new GrowingBytes(0);
    if (early.length > 0) sp.up.data(early);
    for (const chunk of upSocket.data.early) sp.down.data(chunk);
    upSocket.data.early = [];
    if (c.closed) sp.clientClosed(c.reset);
    else if (c.ended) sp.up.ended();
    if (upSocket.data.closed) sp.upstreamClosed(upSocket.data.reset);
    else if (upSocket.data.ended) sp.down.ended();
    socket.resume();
    upSocket.resume();
  };
  const handlers = {
    open(socket: Socket<Conn>) {
      if (deps.accepting?.() === false) {
        // The audit log cannot be written (audit.on_failure: refuse): nothing goes unrecorded.
        socket.terminate();
        return;
      }
      const tracked = inFlight.open(connAudit(deps.audit, "egress", performance.now()), () => socket.terminate());
      socket.data = { tracked, timeouts: deps.timeouts?.() ?? DEFAULT_PROXY_SETTINGS, buf: new GrowingBytes(), peeker: new Peeker(), peeked: Promise.withResolvers(), settled: false, timer: null, sp: null, ended: false, closed: false, reset: false };
      serve(socket).catch((e: unknown) => {
        const error = e instanceof Error ? e.message : String(e);
        deps.logger.error("egress_failed", { outcome: "refused", reason: "internal_error", error });
        tracked.events.close({ ...tracked.fields, outcome: "refused", reason: "internal_error", detail: error });
        socket.end();
      });
    },
    data(socket: Socket<Conn>, chunk: Uint8Array) {
      const c = socket.data;
      if (c === undefined) return; // closed at accept
      if (c.sp !== null) return c.sp.up.data(chunk);
      c.buf.append(chunk);
      if (c.buf.length >= MAX_PEEK_BYTES) socket.pause();
      tryPeek(c);
    },
    drain: (socket: Socket<Conn>) => socket.data?.sp?.down.drain(),
    end: (socket: Socket<Conn>) => {
      const c = socket.data;
      if (c === undefined) return;
      if (c.sp !== null) return c.sp.up.ended();
      c.ended = true;
      settle(c, { kind: "other" });
    },
    close: (socket: Socket<Conn>, error?: Error) => {
      const c = socket.data;
      if (c === undefined) return;
      c.closed = true;
      c.reset = (error as { code?: string } | undefined)?.code === "ECONNRESET";
      if (c.sp !== null) return c.sp.clientClosed(c.reset);
      settle(c, { kind: "other" });
    },
    error() {},
  };
  const listeners: { stop(force?: boolean): void }[] = [];
  try {
    for (const hostname of ["127.0.0.1", "::1"]) listeners.push(Bun.listen<Conn>({ hostname, port, allowHalfOpen: true, socket: handlers }));
  } catch (e) {
    for (const l of listeners) l.stop(true);
    throw e;
  }
  return {
    port,
    stopAccepting: () => {
      for (const l of listeners) l.stop(false);
      inFlight.drain();
    },
    inFlight: () => inFlight.size,
    endAll: (fields) => inFlight.endAll(fields),
    recheck: () => inFlight.recheck(),
    stop: () => {
      for (const l of listeners) l.stop(true);
      deps.intercept?.legs?.close();
      deps.intercept?.sessions?.close(); // tool calls a session still awaits are logged without an answer
    },
  };
}
