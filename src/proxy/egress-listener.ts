/**
 * The egress listener (DESIGN.md section 3, steps 3 and 4): where the kernel sends every TCP
 * connection of a managed workload that no kernel rule decides. It listens on loopback, IPv4 and
 * IPv6, on a port below 1024 so no unprivileged process can take it while the agent is down.
 *
 * For each connection, guaranteed and in this order:
 * 1. the caller is found from the kernel's record, by the peer's address and port (never from
 *    anything the workload sends); no record: refused (`no_record`);
 * 2. the caller is identified: its cgroup's workload, and the process attested against that
 *    workload's identity; no identity, or another one than the cgroup's: refused;
 * 3. the policy decides on the original destination (the name comes with the proxy, next issue).
 * Until the proxy lands, every connection is then closed, with the decision logged: nothing is
 * forwarded. Every outcome is one `egress` log line carrying the process identity.
 */
import type { Socket, TCPSocketListener } from "bun";
import type { IpAddress } from "../policy/address.ts";
import { parseIp } from "../policy/address.ts";
import type { PolicyEngine } from "../policy/engine.ts";
import { describeDecision, type Decision } from "../policy/query.ts";
import type { SpiffeId } from "../spiffe/index.ts";
import type { Logger } from "../runtime/log.ts";

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
}

export type Identified =
  | { readonly ok: true; readonly id: SpiffeId; readonly workload: string }
  | { readonly ok: false; readonly workload: string | null; readonly reason: string; readonly detail: string };

export interface EgressDeps {
  /** The record for a connection from `address`:`port` (the peer as the listener sees it), or null. */
  lookupRecord(address: IpAddress, port: number): CaptureRecord | null;
  identify(record: CaptureRecord): Promise<Identified>;
  /** The engine of the policy in force; null before the first good policy (everything refused). */
  engine(): PolicyEngine | null;
  logger: Logger;
}

export interface EgressListener {
  readonly port: number;
  stop(): void;
}

function recordFields(r: CaptureRecord): Record<string, unknown> {
  return { dst: r.address.text, dst_port: r.port, pid: r.tgid, tid: r.pid, uid: r.uid, gid: r.gid, cgroup_id: r.cgroupId.toString() };
}

/** Decides one accepted connection; exported for tests. */
export async function judge(peer: { address: IpAddress; port: number }, deps: EgressDeps): Promise<{ event: Record<string, unknown>; decision: Decision | null }> {
  const base = { peer: `${peer.address.text}:${peer.port}` };
  const record = deps.lookupRecord(peer.address, peer.port);
  if (record === null) return { event: { ...base, outcome: "refused", reason: "no_record" }, decision: null };
  const who = await deps.identify(record);
  const fields = { ...base, ...recordFields(record), workload: who.workload };
  if (!who.ok) return { event: { ...fields, outcome: "refused", reason: who.reason, detail: who.detail }, decision: null };
  const engine = deps.engine();
  if (engine === null) return { event: { ...fields, spiffe_id: who.id.toString(), outcome: "refused", reason: "no_policy" }, decision: null };
  const decision = engine.decide({ from: who.id, proto: "tcp", port: record.port, address: record.address, name: null });
  const event = {
    ...fields,
    spiffe_id: who.id.toString(),
    decision: decision.verdict,
    rule: decision.rule?.name ?? null,
    summary: describeDecision(decision),
    outcome: "refused",
    reason: decision.verdict === "deny" ? decision.reason : "proxy_not_implemented",
  };
  return { event, decision };
}

export function startEgressListener(port: number, deps: EgressDeps): EgressListener {
  const handlers = {
    open(socket: Socket<undefined>) {
      let peer: IpAddress;
      try {
        peer = parseIp(socket.remoteAddress);
      } catch {
        deps.logger.warn("egress", { outcome: "refused", reason: "bad_peer", peer: socket.remoteAddress });
        socket.end();
        return;
      }
      const remotePort = (socket as unknown as { remotePort: number }).remotePort;
      judge({ address: peer, port: remotePort }, deps).then(
        ({ event }) => {
          deps.logger.info("egress", event);
          socket.end();
        },
        (e: unknown) => {
          deps.logger.error("egress", { outcome: "refused", reason: "internal_error", error: e instanceof Error ? e.message : String(e) });
          socket.end();
        },
      );
    },
    data() {},
    error() {},
  };
  const listeners: TCPSocketListener<undefined>[] = [];
  try {
    listeners.push(Bun.listen({ hostname: "127.0.0.1", port, socket: handlers }));
    listeners.push(Bun.listen({ hostname: "::1", port, socket: handlers }));
  } catch (e) {
    for (const l of listeners) l.stop(true);
    throw e;
  }
  return {
    port,
    stop: () => {
      for (const l of listeners) l.stop(true);
    },
  };
}
