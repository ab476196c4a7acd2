/**
 * An intercepted connection (DESIGN.md section 5, `intercept`, and rule 3's `inspect`), from the
 * egress listener's hand-over to its conn_close event (conn-audit.ts):
 * - the workload sent plain HTTP: its requests are parsed as they come;
 * - it sent a TLS ClientHello: the session is terminated with the interception CA's leaf for the
 *   name it gave, offering http/1.1 only; with no name (a client of https://ADDRESS: an IP
 *   literal is no server_name, RFC 6066) the leaf names the address the workload dialled (the
 *   kernel's record, never anything the workload sent), as its one IP SAN; with no SNI to hold
 *   it to, each request's Host is decided as over plain HTTP (request-policy.ts): an address
 *   must be the one dialled, a name must resolve to it;
 * then every request is decided, rewritten and re-originated upstream with TLS, or mTLS when the
 * rule has `mtls:` (exchange.ts). Without an interception CA or a secret store the connection is
 * refused (`intercept_unavailable`). Once it is served, a stopping agent ends it after the answer
 * in progress, or cuts it at the drain deadline (`conn.tracked.control`, in-flight.ts).
 */
import type { Socket } from "bun";
import type { NameCache } from "../../policy/name-cache.ts";
import type { PolicyEngine } from "../../policy/engine.ts";
import type { SpiffeId } from "../../spiffe/id.ts";
import type { Logger } from "../../runtime/log.ts";
import type { Audit } from "../../audit/sink/audit-log.ts";
import type { ConnAudit } from "../conn-audit.ts";
import type { IpAddress } from "../../policy/address.ts";
import type { PeekResult } from "../peek/peek.ts";
import type { Splice } from "../splice.ts";
import type { UpstreamDeps, UpstreamTls } from "../upstream.ts";
import { hex, randomConnectionId } from "../peer-tls.ts";
import { plainClient, tlsClient, type Leaf } from "./client-side.ts";
import { HttpExchange } from "./exchange.ts";
import type { LegPool } from "./leg-pool.ts";
import type { LegSpec } from "../egress-listener.ts";
import type { PinStore, SessionLists } from "../../mcp/index.ts";
import type { EgressRule, ProxySettings } from "../../policy/model.ts";
import type { Tracked } from "../in-flight.ts";
import type { IdentitySource } from "../identity-source.ts";
import { stillAnchored } from "../peer-verifier.ts";

export interface InterceptDeps {
  leafFor(serverName: string): Promise<Leaf>;
  secret(name: string): string | null;
  /** Idle upstream legs shared by the listener's connections; absent: none are kept. */
  readonly legs?: LegPool;
  /** Tool pins of MCP servers behind rules with `mcp:`; absent: none are kept. */
  readonly pins?: PinStore;
  /** The lists each MCP session was sent, shared by the listener's connections, so a session's stream tells its client of list changes (lists-seen.ts); absent: not told. */
  readonly sessions?: SessionLists;
}

interface ConnState {
  sp: Splice | null;
  ended: boolean;
  closed: boolean;
  /** Where the exchange's drain and cut are put (in-flight.ts). */
  tracked: Tracked;
}

type Fields = Record<string, unknown>;

export interface InterceptCall {
  readonly socket: Socket<unknown>;
  readonly conn: ConnState;
  /** What was read while peeking. */
  readonly early: Uint8Array;
  readonly first: PeekResult;
  readonly caller: { record: { address: IpAddress; port: number }; id: SpiffeId };
  readonly fields: Fields;
  readonly deps: { engine(): PolicyEngine | null; names(): Pick<NameCache, "resolve">; intercept?: InterceptDeps; logger: Logger; audit: Audit; accepting?(): boolean; timeouts?(): ProxySettings; stillIdentified?(workload: string, id: string): boolean; identity?: Pick<IdentitySource, "trust"> };
  readonly upstream: UpstreamDeps;
  /** conn_open and conn_close of this connection (conn.tracked.events). */
  readonly events: ConnAudit;
  legTls(spec: LegSpec): UpstreamTls | { refused: string; detail: string };
}

/** What an intercepted connection's later requests are told once `workload` no longer has identity `id`. */
function revocation(workload: string, id: SpiffeId, still: (workload: string, id: string) => boolean): () => string | null {
  const text = id.toString();
  return () => (still(workload, text) ? null : `workload ${workload} no longer has identity ${text} (its registration changed); this connection takes no more requests`);
}

/** What a rule's legs are wrapped in for `serverName`: the connection's last, while its requests go by the same rule to the same name. */
function legSpecs(): (rule: EgressRule, serverName: string | null) => LegSpec {
  let last: { rule: EgressRule; serverName: string | null; spec: LegSpec } | null = null;
  return (rule, serverName) => {
    if (last !== null && last.rule === rule && last.serverName === serverName) return last.spec;
    const spec: LegSpec = rule.serverId !== null ? { kind: "mtls", serverName, serverId: rule.serverId, keyExchange: rule.keyExchange } : { kind: "tls", serverName, caFile: rule.ca, keyExchange: rule.keyExchange };
    last = { rule, serverName, spec };
    return spec;
  };
}

export async function serveIntercept(call: InterceptCall): Promise<void> {
  const { socket, conn, first, deps } = call;
  const refuse = (reason: string, detail: string) => {
    call.events.close({ ...call.fields, outcome: "refused", reason, detail });
    socket.end();
  };
  const ix = deps.intercept;
  if (ix === undefined) return refuse("intercept_unavailable", "the agent has no interception CA");
  const connId = hex(randomConnectionId());
  const base: Fields = { conn_id: connId, side: "egress", spiffe_id: call.fields.spiffe_id ?? null, pid: call.fields.pid ?? null, workload: call.fields.workload ?? null };
  let exchange: HttpExchange | null = null;
  const receiver = {
    data: (c: Uint8Array) => exchange?.clientData(c),
    end: () => exchange?.clientEnd(),
    closed: () => exchange?.clientClosed(),
    drain: () => exchange?.clientDrain(),
  };
  let client;
  const sni: string | null = first.kind === "tls" ? first.serverName : null;
  const terminated = first.kind === "tls";
  if (first.kind === "tls") {
    let leaf: Leaf;
    try {
      leaf = await ix.leafFor(sni ?? call.caller.record.address.text);
    } catch (e) {
      return refuse("intercept_unavailable", e instanceof Error ? e.message : String(e));
    }
    client = tlsClient(socket, call.early, leaf, receiver);
  } else {
    client = plainClient(socket, receiver);
  }
  call.events.open({ ...call.fields, conn_id: connId, tls_terminated: terminated });
  const legSpec = legSpecs();
  exchange = new HttpExchange(
    client.side,
    { from: call.caller.id, address: call.caller.record.address, port: call.caller.record.port, sni },
    base,
    {
      engine: deps.engine,
      names: deps.names,
      secret: (n) => ix.secret(n),
      upstream: call.upstream,
      pool: ix.legs ?? null,
      ...(ix.pins !== undefined ? { pins: ix.pins } : {}),
      ...(ix.sessions !== undefined ? { sessions: ix.sessions } : {}),
      ...(deps.identity !== undefined ? { anchored: (peer: { id: SpiffeId; anchor: Uint8Array }) => stillAnchored(deps.identity!.trust().bundles, peer.id, peer.anchor) } : {}),
      ...(deps.timeouts !== undefined ? { timeouts: deps.timeouts() } : {}),
      legTls: (v) => call.legTls(legSpec(v.rule, v.upstream.serverName)),
      audit: deps.audit,
      ...(deps.accepting !== undefined ? { accepting: () => deps.accepting!() } : {}),
      ...(deps.stillIdentified !== undefined && typeof call.fields.workload === "string" ? { revoked: revocation(call.fields.workload, call.caller.id, deps.stillIdentified) } : {}),
    },
    (end) => call.events.close({ ...call.fields, conn_id: connId, tls_terminated: terminated, ...end }),
  );
  // From here the listener's handlers feed the exchange (through the splice slot they call).
  conn.sp = {
    up: { data: (c: Uint8Array) => client.feed.data(c), ended: () => client.feed.ended(), drain() {} },
    down: { data() {}, ended() {}, drain: () => client.feed.drain() },
    clientClosed: () => client.feed.closed(),
    upstreamClosed() {},
    abort() {},
    bytesUp: () => 0,
    bytesDown: () => 0,
  };
  const ex = exchange;
  conn.tracked.control = { drain: () => ex.drain(), cut: (why) => ex.cut(why) };
  conn.tracked.recheck = () => ex.recheck();
  if (first.kind !== "tls" && call.early.length > 0) exchange.clientData(call.early);
  if (conn.closed) client.feed.closed();
  else if (conn.ended) client.feed.ended();
  socket.resume();
}
