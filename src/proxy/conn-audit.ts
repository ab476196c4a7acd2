/**
 * The audit events of one proxied connection (docs/audit.md): `conn_open` once it is decided and
 * (when allowed) its upstream is ready, `conn_close` when it ends; every connection gets both,
 * a refused one too (decision deny, outcome refused), in that order, with the same `conn_id`,
 * `src`, `dst`, `decision` and `rule`, so each event reads on its own.
 *
 * The listeners describe a connection with flat fields (pid, dst, name, rule, outcome, ...); this
 * turns them into the events' shape: `src` (the caller), `dst` (where it was going), then the
 * rest. A connection refused before anything was decided (no identity, a bad first request)
 * counts as denied: nothing of it was forwarded.
 */
import type { Audit } from "../audit/sink/audit-log.ts";
import { hex, randomConnectionId } from "./peer-tls.ts";

type Fields = Readonly<Record<string, unknown>>;

export interface ConnAudit {
  /** conn_open, once; `close` sends it first if it was not sent. */
  open(f: Fields): void;
  close(f: Fields): void;
  /** The connection's id as its events carry it. */
  readonly connId: () => string;
}

const num = (x: unknown): number | null => (typeof x === "number" ? x : null);
const str = (x: unknown): string | null => (typeof x === "string" && x.length > 0 ? x : null);

/** Fields that become `src`, `dst` or the event's own; the rest pass as they are. */
const SHAPED = new Set(["pid", "tid", "uid", "gid", "cgroup_id", "workload", "spiffe_id", "peer", "dst", "dst_port", "name", "decision", "rule", "action", "conn_id", "outcome", "bytes_up", "bytes_down", "duration_ms", "client", "client_id", "listen", "side", "src"]);

function rest(f: Fields): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k in f) {
    const v = optional(f[k]);
    if (!SHAPED.has(k) && v !== undefined) out[k] = v;
  }
  return out;
}

/**
 * An optional field as the schema takes it: absent rather than empty or null (a text field is 1 or
 * more characters), and an error's text cut to 1,000 characters. A line the schema refuses would
 * stop `audit verify` there: nothing after it could be checked.
 */
export function optional(v: unknown): unknown {
  if (v === null || v === "") return undefined;
  return typeof v === "string" && v.length > 1000 ? `${v.slice(0, 1000)}...` : v;
}

function egressSrc(f: Fields) {
  return { spiffe_id: str(f.spiffe_id), pid: num(f.pid), uid: num(f.uid), cgroup_id: str(f.cgroup_id) ?? num(f.cgroup_id), workload: str(f.workload), exe: null, peer: str(f.peer) ?? "unknown" };
}

function inboundSrc(f: Fields) {
  return { spiffe_id: str(f.client_id), pid: null, uid: null, cgroup_id: null, workload: null, exe: null, peer: str(f.client) ?? "unknown" };
}

function hostPort(text: unknown): { addr: string; port: number } {
  const s = typeof text === "string" ? text : "";
  const i = s.lastIndexOf(":");
  return i < 0 ? { addr: s || "unknown", port: 0 } : { addr: s.slice(0, i).replace(/^\[|\]$/g, "") || "unknown", port: Number(s.slice(i + 1)) || 0 };
}

export function connAudit(audit: Audit, side: "egress" | "inbound", started = performance.now()): ConnAudit {
  let id: string | null = null;
  let head: Record<string, unknown> | null = null;
  const connId = (f?: Fields) => (id ??= str(f?.conn_id) ?? hex(randomConnectionId()));
  /** What both events say: who, where to, what was decided. */
  const describe = (f: Fields) => {
    const src = side === "egress" ? egressSrc(f) : inboundSrc(f);
    const dst = side === "egress" ? { addr: str(f.dst) ?? "unknown", port: num(f.dst_port) ?? 0, name: str(f.name) } : { ...hostPort(f.listen), name: null };
    // Refused, or (egress) never decided to go anywhere: nothing of it was forwarded.
    const decision = f.outcome === "refused" || (side === "egress" && f.decision !== "allow" && f.decision !== "inspect") ? "deny" : "allow";
    return { conn_id: connId(f), side, src, dst, decision, rule: str(f.rule), action: str(f.action) };
  };
  const open = (f: Fields) => {
    if (head !== null) return;
    head = describe(f);
    audit.emit("conn_open", { ...head, ...(side === "egress" && num(f.tid) !== null ? { tid: f.tid, gid: f.gid } : {}) });
  };
  return {
    open,
    close(f) {
      open(f);
      audit.emit("conn_close", {
        ...head!,
        // A refusal after the open (an upstream that failed its verification, say) is its own outcome; the open's decision stands.
        outcome: str(f.outcome) ?? "closed",
        bytes_up: num(f.bytes_up) ?? 0,
        bytes_down: num(f.bytes_down) ?? 0,
        duration_ms: Math.round(performance.now() - started),
        ...rest(f),
      });
    },
    connId: () => connId(),
  };
}
