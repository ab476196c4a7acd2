/**
 * What each policy rule decided since the policy in force was loaded, and the last denies, for
 * `tidegate status` (docs/cli.md; `capture.rules` and `capture.recent_denies` of agent.sock's
 * `GET /v1/status`, docs/server-api.md).
 *
 * Counted from the agent's audit events, the one place every decision passes (docs/audit.md):
 * - `conn_open`: one connection decided by its `rule` (the proxy's egress and inbound listeners);
 *   denied when its `decision` is deny. One with no rule is counted at its `conn_close`, which
 *   follows at once: under "no rule" when it was refused (no rule matched, or refused before any
 *   was tried), not at all when the client went away before it said where to (nothing decided);
 * - `http_request`: one request of an intercepted connection decided by its `rule`; denied when
 *   refused;
 * - `deny`: a connection the kernel refused (it never reaches the proxy), under the rule it
 *   names, or under "kernel" when it names none;
 * - a tools/call of an inbound listener or a stdio rule (`tool_call`): one request under its rule,
 *   denied when refused; another refused MCP request there (`mcp_denied`): one denied request.
 *   Under an egress rule the same call is already its intercepted `http_request`, so it is not
 *   counted twice; a refused one's recent deny names what the gate refused (`POST HOST/PATH
 *   (tools/call TOOL)`).
 * A `conn_close` of a refused, denied connection, a refused `http_request`, a `deny` and such an
 * MCP refusal each add one entry to the recent denies (the last RECENT_DENIES; older ones fall
 * out), as does the `conn_close` of an allowed connection that a reload, a registration change
 * or a bundle change ended (`policy_changed`, `identity_revoked`, `rule_removed`,
 * `client_not_allowed`, `peer_untrusted`, `client_untrusted`; not counted again: its conn_open
 * was). What the kernel lets through (`direct`) is not reported to user space, so it is not
 * counted.
 *
 * Counts start again at zero when the policy generation moves (a good reload; a rejected one
 * keeps the policy and the counts); recent denies are kept across reloads. Events are counted
 * when they are recorded, so one decided just before a reload may count in the next generation.
 *
 * Only names, addresses, ports, paths (never a query), SPIFFE IDs, pids and reason codes are
 * kept: no header, no secret, no `detail` text (a quoted protocol error could carry one).
 */
import type { Audit, Fields } from "../audit/sink/audit.ts";
import type { AuditEventType } from "../audit/format/index.ts";
import type { Policy } from "../policy/model.ts";

/** How many denies are kept. */
export const RECENT_DENIES = 20;

export interface RuleCount {
  readonly name: string;
  readonly side: "egress" | "inbound" | "stdio";
  /** The egress rule's action; null for an inbound or stdio rule (it accepts or refuses callers and MCP requests). */
  readonly action: string | null;
  readonly line: number;
  /** connections + requests. */
  readonly hits: number;
  readonly connections: number;
  readonly requests: number;
  readonly denied: number;
}

export interface RecentDeny {
  readonly time: string;
  /** "stdio": an MCP request on the pipes of a `tidegate run --mcp-stdio` server. */
  readonly side: "egress" | "inbound" | "stdio";
  /** "kernel": refused at connect by the eBPF programs; "proxy": by a listener. */
  readonly source: "kernel" | "proxy";
  readonly kind: "connection" | "request";
  /** The caller's SPIFFE ID; null when it was not identified. */
  readonly caller: string | null;
  readonly pid: number | null;
  readonly workload: string | null;
  /** ADDR:PORT (NAME) for a connection; METHOD HOST/PATH for a request. */
  readonly destination: string;
  /** null: no rule decided it. */
  readonly rule: string | null;
  /** The reason code of the audit event (no_rule, rule, client_not_allowed, ...). */
  readonly reason: string;
}

export interface Unmatched {
  /** Connections and requests the proxy decided with no rule (denied). */
  readonly connections: number;
  readonly requests: number;
  /** Connections the kernel refused naming no rule. */
  readonly kernel: number;
}

export interface RuleHitsStatus {
  /** The policy generation the counts are of, and when counting for it began. */
  readonly hits_since: { readonly generation: number; readonly at: string };
  /** The policy's egress, inbound and stdio rules in file order, those with no hits too; empty without a policy. */
  readonly rules: readonly RuleCount[];
  readonly unmatched: Unmatched;
  /** Newest first. */
  readonly recent_denies: readonly RecentDeny[];
}

interface Counts {
  connections: number;
  requests: number;
  denied: number;
}

const MAX_TEXT = 300;

/** The reasons an allowed connection is ended for once what allowed it is gone (docs/proxy.md, "A reload"). */
const REVOKED = new Set(["policy_changed", "identity_revoked", "rule_removed", "client_not_allowed", "peer_untrusted", "client_untrusted"]);

const str = (x: unknown): string | null => (typeof x === "string" && x.length > 0 ? x.slice(0, MAX_TEXT) : null);
const num = (x: unknown): number | null => (typeof x === "number" && Number.isFinite(x) ? x : null);
const obj = (x: unknown): Record<string, unknown> => (typeof x === "object" && x !== null ? (x as Record<string, unknown>) : {});
const sideOf = (x: unknown): "egress" | "inbound" => (x === "inbound" ? "inbound" : "egress");

function hostPort(addr: string | null, port: number | null): string {
  const a = addr ?? "unknown";
  return `${a.includes(":") ? `[${a}]` : a}:${port ?? 0}`;
}

function connectionDestination(dst: Record<string, unknown>): string {
  const name = str(dst.name);
  return hostPort(str(dst.addr), num(dst.port)) + (name !== null ? ` (${name})` : "");
}

function requestDestination(f: Fields): string {
  const host = str(f.host);
  const target = str(f.target);
  const where = host !== null ? host + (target ?? "") : target;
  return [str(f.method), where].filter((s) => s !== null).join(" ") || "(unreadable request)";
}

export interface RuleHitsOptions {
  /** The policy generation in force (PolicyHolder.generation). */
  generation(): number;
  /** The policy in force: which rules are egress, inbound or stdio (an MCP refusal's side). */
  policy?(): Policy | null;
  now?(): number;
  /** How many denies to keep (default RECENT_DENIES). */
  keep?: number;
}

export class RuleHits {
  readonly #o: RuleHitsOptions;
  readonly #now: () => number;
  readonly #keep: number;
  #generation: number;
  #since: number;
  #counts = new Map<string, Counts>();
  #unmatched = { connections: 0, requests: 0, kernel: 0 };
  /** A ring: #denies[#next] is the oldest once it is full. */
  #denies: RecentDeny[] = [];
  #next = 0;
  /** The side of each inbound and stdio rule of the policies seen, so an MCP refusal after a reload removed its rule (`rule_removed`) still names its side. */
  #sides = new Map<string, "inbound" | "stdio">();
  /** Per connection, an MCP request refused under an egress rule (`tools/call TOOL`, `METHOD URI`), until that connection's http_request names it. */
  #egressMcp = new Map<string, string>();
  #seen: Policy | null = null;

  constructor(o: RuleHitsOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
    this.#keep = Math.max(1, o.keep ?? RECENT_DENIES);
    this.#generation = o.generation();
    this.#since = this.#now();
  }

  /** An Audit that writes to `inner`, then counts what was written. */
  tap(inner: Audit): Audit {
    return {
      emit: (type, fields) => {
        inner.emit(type, fields);
        this.observe(type, fields);
      },
    };
  }

  /** Counts one audit event (see the module comment); other types are ignored. Never throws on odd fields. */
  observe(type: AuditEventType, f: Fields): void {
    this.#sync();
    switch (type) {
      case "conn_open": {
        const rule = str(f.rule);
        if (rule !== null) this.#count(rule, "connections", f.decision === "deny");
        return;
      }
      case "conn_close": {
        // An allowed connection that a reload, a registration change or a bundle change ended (cut,
        // or refused at its next request) is a recent deny too; it was counted at its conn_open.
        const revoked = f.decision !== "deny" && (f.outcome === "terminated" || f.outcome === "refused") && typeof f.reason === "string" && REVOKED.has(f.reason);
        if (!revoked && (f.decision !== "deny" || f.outcome !== "refused")) return;
        if (!revoked && str(f.rule) === null) this.#count(null, "connections", true);
        const src = obj(f.src);
        return this.#remember({ side: sideOf(f.side), source: "proxy", kind: "connection", caller: str(src.spiffe_id), pid: num(src.pid), workload: str(src.workload), destination: connectionDestination(obj(f.dst)), rule: str(f.rule), reason: str(f.reason) ?? "refused" });
      }
      case "http_request": {
        const refused = f.outcome === "refused";
        this.#count(str(f.rule), "requests", refused);
        const conn = str(f.conn_id);
        const mcp = conn !== null ? (this.#egressMcp.get(conn) ?? null) : null;
        if (mcp !== null) this.#egressMcp.delete(conn!);
        if (!refused) return;
        const destination = requestDestination(f) + (mcp !== null ? ` (${mcp})` : "");
        return this.#remember({ side: sideOf(f.side), source: "proxy", kind: "request", caller: str(f.spiffe_id), pid: num(f.pid), workload: str(f.workload), destination, rule: str(f.rule), reason: str(f.reason) ?? "refused" });
      }
      case "tool_call":
      case "mcp_denied": {
        const rule = str(f.rule);
        const policy = this.#o.policy?.() ?? null;
        if (type === "tool_call" && f.decision !== "deny") {
          // A call let through under an inbound or stdio rule is one of its requests; under an egress rule its http_request is.
          if (rule !== null && policy !== null && (policy.inbound.some((r) => r.name === rule) || policy.stdio.some((r) => r.name === rule))) this.#count(rule, "requests", false);
          return;
        }
        const what = type === "tool_call" ? `tools/call ${str(f.tool) ?? "?"}` : `${str(f.method) ?? "?"} ${str(f.target) ?? "?"}`;
        if (rule !== null && policy?.egress.some((r) => r.name === rule) === true) {
          // Its http_request, written next on the same connection, is the count and the recent deny; it names what was refused.
          const conn = str(f.conn_id);
          if (conn === null) return;
          if (this.#egressMcp.size >= 256) this.#egressMcp.clear(); // each is taken at once; never more than the requests in flight
          this.#egressMcp.set(conn, what);
          return;
        }
        if (rule === null || policy === null) return;
        this.#count(rule, "requests", true);
        const side = policy.inbound.some((r) => r.name === rule) ? "inbound" : policy.stdio.some((r) => r.name === rule) ? "stdio" : (this.#sides.get(rule) ?? "stdio");
        return this.#remember({ side, source: "proxy", kind: "request", caller: str(f.caller_id), pid: null, workload: null, destination: what, rule, reason: str(f.reason) ?? "denied" });
      }
      case "deny": {
        const kernel = f.source === "kernel";
        const rule = str(f.rule);
        if (rule === null && kernel) this.#unmatched.kernel += 1;
        else this.#count(rule, "connections", true);
        const src = obj(f.src);
        return this.#remember({ side: sideOf(f.side), source: kernel ? "kernel" : "proxy", kind: "connection", caller: str(src.spiffe_id), pid: num(src.pid), workload: str(src.workload), destination: connectionDestination(obj(f.dst)), rule, reason: str(f.reason) ?? "denied" });
      }
      default:
        return;
    }
  }

  /** The counts for `policy` (the one in force) and the recent denies. */
  status(policy: Policy | null): RuleHitsStatus {
    this.#sync();
    const zero: Counts = { connections: 0, requests: 0, denied: 0 };
    const rules = [
      ...(policy?.egress ?? []).map((r) => ({ name: r.name, side: "egress" as const, action: r.action as string | null, line: r.line })),
      ...(policy?.inbound ?? []).map((r) => ({ name: r.name, side: "inbound" as const, action: null, line: r.line })),
      ...(policy?.stdio ?? []).map((r) => ({ name: r.name, side: "stdio" as const, action: null, line: r.line })),
    ]
      .sort((a, b) => a.line - b.line)
      .map((r) => {
        const c = this.#counts.get(r.name) ?? zero;
        return { ...r, hits: c.connections + c.requests, connections: c.connections, requests: c.requests, denied: c.denied };
      });
    const n = this.#denies.length;
    const recent = Array.from({ length: n }, (_, i) => this.#denies[(this.#next - 1 - i + n) % n]!);
    return { hits_since: { generation: this.#generation, at: new Date(this.#since).toISOString() }, rules, unmatched: { ...this.#unmatched }, recent_denies: recent };
  }

  /** A new policy generation: counts start again. */
  #sync(): void {
    const policy = this.#o.policy?.() ?? null;
    if (policy !== this.#seen && policy !== null) {
      this.#seen = policy;
      if (this.#sides.size > 4096) this.#sides.clear();
      for (const r of policy.inbound) this.#sides.set(r.name, "inbound");
      for (const r of policy.stdio) this.#sides.set(r.name, "stdio");
    }
    const g = this.#o.generation();
    if (g === this.#generation) return;
    this.#generation = g;
    this.#since = this.#now();
    this.#counts = new Map();
    this.#unmatched = { connections: 0, requests: 0, kernel: 0 };
  }

  #count(rule: string | null, what: "connections" | "requests", denied: boolean): void {
    if (rule === null) {
      this.#unmatched[what] += 1;
      return;
    }
    let c = this.#counts.get(rule);
    if (c === undefined) this.#counts.set(rule, (c = { connections: 0, requests: 0, denied: 0 }));
    c[what] += 1;
    if (denied) c.denied += 1;
  }

  #remember(d: Omit<RecentDeny, "time">): void {
    const entry = Object.freeze({ time: new Date(this.#now()).toISOString(), ...d });
    if (this.#denies.length < this.#keep) {
      this.#denies.push(entry);
      this.#next = this.#denies.length % this.#keep;
    } else {
      this.#denies[this.#next] = entry;
      this.#next = (this.#next + 1) % this.#keep;
    }
  }
}
