/**
 * `tidegate status`: what the local agent holds and whether it is healthy, from agent.sock
 * (docs/server-api.md, agent admin API). Exit 0 healthy, 1 unhealthy or not running.
 */
import type { Command } from "./command.ts";
import { UsageError } from "./usage-error.ts";
import { join } from "node:path";
import { callUnix, nobodyListens } from "../runtime/unix-http.ts";
import { formatDuration } from "../runtime/duration.ts";
import type { AgentStatus } from "../agent/index.ts";
import type { RecentDeny, RuleCount, Unmatched } from "../agent/rule-hits.ts";
import { TidegateError } from "../errors.ts";

export class StatusCliError extends TidegateError<"agent_not_running" | "agent_status_failed"> {}

/** How many recent denies the screen shows (the agent keeps more; --json has them all). */
const DENIES_SHOWN = 10;

function when(isoText: string | null, now: number): string {
  if (isoText === null) return "never";
  const ms = new Date(isoText).getTime() - now;
  const span = formatDuration(Math.round(Math.abs(ms) / 1000) * 1000);
  return `${isoText} (${ms >= 0 ? `in ${span}` : `${span} ago`})`;
}

/** What the agent's enforcing half reports beside the identity status (src/agent/enforcer.ts). */
export interface CaptureStatus {
  readonly unavailable?: string | null;
  readonly cgroup?: string;
  readonly egress_port?: number;
  readonly policy?: { file: string; egress_rules: number; generation: number } | null;
  /** The config file's last refused load, while no good one has come since. */
  readonly policy_rejected?: { at: string; error: string } | null;
  readonly workloads?: readonly string[];
  /** Connections whose conn_close is not written yet, by listener side. */
  readonly open_connections?: { readonly egress: number; readonly inbound: number };
  /** The kernel's count of each workload's sockets open through the egress proxy, and its bound (agent.max_connections_per_workload). */
  readonly workload_connections?: { readonly max: number; readonly open: Readonly<Record<string, number>> };
  readonly inbound?: readonly { rule: string; listen: string; id: string; state: string; detail?: string }[];
  /** src/agent/rule-hits.ts: counts since the policy generation `hits_since` names, and the last denies. */
  readonly hits_since?: { generation: number; at: string };
  readonly rules?: readonly RuleCount[];
  readonly unmatched?: Unmatched;
  readonly recent_denies?: readonly RecentDeny[];
}

/** What a workload sent (a Host, a path) shown on one line: control characters become "?". */
const oneLine = (text: string) => text.replace(/[\u0000-\u001f\u007f-\u009f]/g, "?");

function table(rows: readonly (readonly string[])[], numeric: readonly boolean[]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => ("  " + r.map((cell, i) => (numeric[i] ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join("  ")).trimEnd());
}

function renderRules(c: CaptureStatus, now: number, lines: string[]): void {
  if (c.rules === undefined || c.hits_since === undefined) return;
  const u = c.unmatched ?? { connections: 0, requests: 0, kernel: 0 };
  lines.push(`rules (since generation ${c.hits_since.generation}, ${when(c.hits_since.at, now)})`);
  if (!c.policy) lines.push("  none: no policy is loaded");
  const n = (x: number) => String(x);
  const rows: string[][] = [["RULE", "ACTION", "HITS", "CONNECTIONS", "REQUESTS", "DENIED"]];
  for (const r of c.rules) rows.push([oneLine(r.name), r.action ?? r.side, n(r.hits), n(r.connections), n(r.requests), n(r.denied)]);
  rows.push(["(no rule)", "", n(u.connections + u.requests), n(u.connections), n(u.requests), n(u.connections + u.requests)]);
  rows.push(["(kernel, no rule)", "", n(u.kernel), n(u.kernel), "0", n(u.kernel)]);
  lines.push(...table(rows, [false, false, true, true, true, true]));
}

function denyLine(d: RecentDeny, now: number): string {
  const who = `${d.caller ?? "unidentified"}${d.pid !== null ? ` pid ${d.pid}` : ""}`;
  const by = d.rule !== null ? `rule ${d.rule}` : "no rule";
  return oneLine(`  ${when(d.time, now)}  ${who} -> ${d.destination}: ${by}, ${d.reason}${d.source === "kernel" ? " (kernel)" : ""}`);
}

function renderDenies(c: CaptureStatus, now: number, lines: string[]): void {
  if (c.recent_denies === undefined) return;
  const all = c.recent_denies;
  if (all.length === 0) return void lines.push("recent denies  none");
  const shown = all.slice(0, DENIES_SHOWN);
  lines.push(`recent denies (${shown.length < all.length ? `${shown.length} of ${all.length}` : all.length}, newest first)`);
  for (const d of shown) lines.push(denyLine(d, now));
}

function renderCapture(c: CaptureStatus, now: number, row: (k: string, v: string) => void, lines: string[]): void {
  if (c.cgroup === undefined) return row("capture", `off: ${c.unavailable ?? "unknown"}`);
  row("capture", `cgroup ${c.cgroup}, egress port ${c.egress_port ?? "-"}`);
  row("policy", c.policy ? `${c.policy.file} (generation ${c.policy.generation}, ${c.policy.egress_rules} egress rules)` : "none loaded: managed workloads reach nothing");
  if (c.policy_rejected) {
    row("  REFUSED", `the file as saved ${when(c.policy_rejected.at, now)}: ${oneLine(c.policy_rejected.error)}`);
    lines.push(`  ${c.policy ? "the policy of generation " + c.policy.generation + " stays in force" : "no policy is in force"} until the file loads ('tidegate policy check' it)`);
  }
  row("workloads", c.workloads && c.workloads.length > 0 ? c.workloads.join(", ") : "none running");
  const wc = c.workload_connections;
  if (wc !== undefined && Object.keys(wc.open).length > 0) {
    // Near the bound the kernel refuses the workload's next connect: say so before it happens.
    const each = Object.entries(wc.open).map(([w, n]) => `${w} ${n}${n >= wc.max ? " (AT THE BOUND: further connects fail with EPERM)" : ""}`);
    row("  open", `${each.join(", ")}; at most ${wc.max} each (agent.max_connections_per_workload)`);
  }
  if (c.open_connections !== undefined) row("connections", `${c.open_connections.egress} open through the egress proxy, ${c.open_connections.inbound} through inbound listeners`);
  const inbound = c.inbound ?? [];
  lines.push(`inbound listeners (${inbound.length})`);
  for (const l of inbound) lines.push(`  ${l.rule} on ${l.listen} as ${l.id}: ${l.state}${l.detail ? ` (${l.detail})` : ""}`);
  renderRules(c, now, lines);
  renderDenies(c, now, lines);
}

export function renderStatus(s: AgentStatus & { capture?: CaptureStatus }, now: number): string {
  const lines: string[] = [];
  const row = (k: string, v: string) => lines.push(`${k.padEnd(14)} ${v}`);
  row("health", s.healthy ? "healthy" : `UNHEALTHY (${s.problems.length} problem${s.problems.length === 1 ? "" : "s"})`);
  for (const p of s.problems) lines.push(`  - ${p}`);
  row("node", `${s.node} (${s.spiffe_id})`);
  row("server", `${s.server} (api ${s.api})`);
  row("node SVID", `serial ${s.node_svid.serial}, ${s.node_svid.expired ? "EXPIRED" : "expires"} ${when(s.node_svid.expires_at, now)}`);
  row("  renews", when(s.node_svid.rotate_at, now) + (s.node_svid.renew_error ? `; last renewal failed: ${s.node_svid.renew_error}` : ""));
  row("bundle", `sequence ${s.bundle.sequence ?? "-"}, ${s.bundle.roots.length} root${s.bundle.roots.length === 1 ? "" : "s"}`);
  for (const r of s.bundle.roots) lines.push(`  root sha256 ${r}`);
  for (const f of s.federation) row("federated", `${f.trust_domain}: sequence ${f.sequence ?? "-"}, ${f.roots} root${f.roots === 1 ? "" : "s"}, ${f.expired ? "EXPIRED" : "trusted until"} ${when(f.expires_at, now)}`);
  if (s.audit) row("audit", `${s.audit.healthy ? "ok" : `CANNOT WRITE (${s.audit.error})`}, ${s.audit.seq} events, ${s.audit.dir}`);
  row("last sync", when(s.last_sync, now) + (s.sync.error ? `; failing (${s.sync.failures}x): ${s.sync.error}; next try ${when(s.sync.next_at, now)}` : ""));
  row("entries", String(s.entries.length));
  lines.push(`SVIDs (${s.svids.length})`);
  for (const v of s.svids) {
    lines.push(`  ${v.spiffe_id}`);
    lines.push(`    entry ${v.entry_id}, serial ${v.serial}`);
    lines.push(`    ${v.expired ? "EXPIRED" : "expires"} ${when(v.expires_at, now)}, rotates ${when(v.rotate_at, now)}`);
  }
  if (s.capture !== undefined) renderCapture(s.capture, now, row, lines);
  return lines.join("\n") + "\n";
}

export const statusCommand: Command = {
  name: "status",
  summary: "show the local agent's health, the identities it holds, capture, rule hits and recent denies",
  usage: ["status [--json]"],
  help: [
    "Asks the agent over <run-dir>/agent.sock. Healthy means the node SVID and the SVID of every",
    "entry the agent serves are unexpired and the audit log can be written; otherwise each problem",
    "is listed. With capture: the policy in force (and REFUSED, with the error, when the config",
    "file as last saved did not load), each inbound listener's state, each egress, inbound and",
    "stdio rule's hits since the policy was loaded (a reload starts them again) and the most recent",
    "denies. Exit 0 healthy, 1 unhealthy or when the agent is not running.",
  ].join("\n"),
  options: { json: { type: "boolean", help: "print the agent's status object as JSON" } },
  run: async ({ values, positionals, places, io }) => {
    if (positionals.length > 0) throw new UsageError(`status takes no arguments, got ${JSON.stringify(positionals[0])}`);
    const socket = join(places.runDir, "agent.sock");
    let res;
    try {
      res = await callUnix(socket, "the agent", "GET", "/v1/status");
    } catch (e) {
      // Only a missing or refused socket means no agent; anything else (EACCES) is said as it is.
      if (!nobodyListens(e)) throw new StatusCliError("agent_status_failed", (e as Error).message, { cause: e });
      throw new StatusCliError("agent_not_running", `the agent is not running: nothing answers on ${socket}; start it with 'tidegate up' (single host) or 'tidegate agent'`, { cause: e });
    }
    if (res.status !== 200) throw new StatusCliError("agent_status_failed", `the agent answered ${res.status}: ${JSON.stringify(res.body).slice(0, 500)}`);
    const s = res.body as AgentStatus;
    io.out(values.json ? JSON.stringify(s, null, 2) + "\n" : renderStatus(s, Date.now()));
    return s.healthy ? 0 : 1;
  },
};
