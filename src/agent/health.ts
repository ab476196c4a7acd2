/**
 * The agent's status and health (docs/server-api.md, agent.sock `GET /v1/status`).
 *
 * Healthy = the node SVID has not expired AND every entry the agent should serve has an SVID that
 * has not expired. The entries it should serve are those of the last sync; before the first sync
 * of a run, those it holds SVIDs for from the previous run; an agent that has neither synced nor
 * holds anything from before is not healthy yet ("not synced"). Each failed condition is one line in
 * `problems`. A failing sync alone is not a problem while everything held is still valid (the
 * server may be down for a while); it shows in `sync`. An audit log that cannot be written is a
 * problem too (DESIGN.md section 8).
 */
import type { AgentCore } from "./agent-core.ts";
import { iso } from "./agent-core.ts";
import { apiOrigin } from "./server-client.ts";
import type { Entry } from "./wire.ts";

export interface SvidStatus {
  entry_id: string;
  spiffe_id: string;
  serial: string;
  expires_at: string;
  rotate_at: string;
  expired: boolean;
}

export interface AgentStatus {
  healthy: boolean;
  problems: string[];
  node: string;
  spiffe_id: string;
  trust_domain: string;
  server: string;
  api: string;
  node_svid: { serial: string; expires_at: string; rotate_at: string; expired: boolean; renew_error: string | null };
  bundle: { sequence: number | null; roots: string[] };
  /** Federated trust domains whose bundles the agent holds (docs/federation.md). */
  federation: { trust_domain: string; sequence: number | null; roots: number; expires_at: string; expired: boolean }[];
  /** When the last sync succeeded (ISO 8601), null before the first one of this run. */
  last_sync: string | null;
  /** The sync loop: the last attempt's error (null when it succeeded), the next attempt, failures in a row. */
  sync: { error: string | null; next_at: string; failures: number };
  entries: Entry[];
  svids: SvidStatus[];
  /** The audit log: null when the agent runs without one (in-process tests). */
  audit: AuditStatus | null;
}

export interface AuditStatus {
  dir: string;
  healthy: boolean;
  error: string | null;
  /** The seq of the last event written. */
  seq: number;
  on_failure: "refuse" | "serve";
}

export function statusOf(core: AgentCore, now: number, audit: AuditStatus | null = null): AgentStatus {
  const { config, node } = core.identity;
  const problems: string[] = [];
  if (audit !== null && !audit.healthy) {
    problems.push(`the audit log in ${audit.dir} cannot be written (${audit.error}): ${audit.on_failure === "refuse" ? "new connections are refused" : "connections are served unrecorded (audit.on_failure: serve)"}`);
  }
  if (node.notAfter <= now) problems.push(`node SVID expired at ${iso(node.notAfter)}: the agent needs a new join token`);
  if (core.entries === null && core.svids.size === 0) problems.push(`not synced with the server yet${core.lastSync.error ? `: ${core.lastSync.error}` : ""}`);
  const expected = core.entries !== null ? [...core.entries.keys()] : [...core.svids.keys()];
  for (const id of expected.sort()) {
    const held = core.svids.get(id);
    const entry = core.entries?.get(id);
    const name = `entry ${id} (${entry?.spiffe_id ?? held?.spiffeId ?? "?"})`;
    if (held === undefined) {
      const err = core.entryRetry.get(id)?.error;
      problems.push(`${name} has no SVID yet${err ? `: ${err}` : ""}`);
    } else if (held.notAfter <= now) {
      problems.push(`${name}: SVID expired at ${iso(held.notAfter)}`);
    }
  }
  const svids = [...core.svids.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([id, s]) => ({ entry_id: id, spiffe_id: s.spiffeId, serial: s.serial, expires_at: iso(s.notAfter), rotate_at: iso(s.rotateAt), expired: s.notAfter <= now }));
  return {
    healthy: problems.length === 0,
    problems,
    node: config.node,
    spiffe_id: config.spiffe_id,
    trust_domain: config.trust_domain,
    server: config.server,
    api: apiOrigin(config.server, config.api_port),
    node_svid: { serial: node.serial, expires_at: iso(node.notAfter), rotate_at: iso(node.rotateAt), expired: node.notAfter <= now, renew_error: core.node.error },
    bundle: { sequence: core.bundle.sequence ?? null, roots: core.bundleRoots },
    federation: [...core.federated]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([td, h]) => ({ trust_domain: td, sequence: h.bundle.sequence ?? null, roots: h.bundle.x509Authorities.length, expires_at: iso(h.expiresAt), expired: h.expiresAt <= now })),
    last_sync: core.lastSync.at === null ? null : iso(core.lastSync.at),
    sync: { error: core.lastSync.error, next_at: iso(core.lastSync.nextAt), failures: core.lastSync.failures },
    entries: core.entries === null ? [] : [...core.entries.values()],
    svids,
    audit,
  };
}
