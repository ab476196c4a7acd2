/**
 * The identity server's audit events (issue 9: node attested, SVID issued, CA rotated, admin),
 * taken from its operational log lines as they are written: a logger that passes every line on
 * and, for the events below, also writes the audit event in the log's schema (docs/audit.md).
 * Nothing else of the server's log goes to the audit log; a line of an unknown shape is passed on
 * only (the mapping reads fields it knows and nothing else, so no value it does not name leaks).
 */
import type { Level, Logger } from "../../runtime/log.ts";
import type { AuditEventType } from "../format/index.ts";
import type { Audit } from "./audit-log.ts";

type Fields = Readonly<Record<string, unknown>>;
type Mapped = readonly [AuditEventType, Record<string, unknown>] | null;

const text = (x: unknown): string | null => (typeof x === "string" && x.length > 0 ? x : null);

/** Operational event name -> the audit event it becomes. */
const MAP: Readonly<Record<string, (f: Fields) => Mapped>> = {
  node_attested: (f) => (text(f.spiffe_id) ? ["node_attested", { node_id: f.spiffe_id, method: "join_token", node: f.node, serial: f.serial, not_after: f.not_after, source: f.source }] : null),
  node_renewed: (f) => (text(f.spiffe_id) ? ["svid_rotated", { spiffe_id: f.spiffe_id, serial: f.serial, not_after: f.not_after, node: f.node }] : null),
  node_reattested: (f) => (text(f.spiffe_id) ? ["svid_issued", { spiffe_id: f.spiffe_id, serial: f.serial, not_after: f.not_after, node: f.node, reattested: true }] : null),
  svid_issued: (f) => ["svid_issued", { spiffe_id: f.spiffe_id, serial: f.serial, not_after: f.not_after, node: f.node, entry_id: f.entry_id }],
  ca_rotated: (f) => ["ca_rotated", { kind: "signing", serial: f.serial, root: f.root, not_after: f.not_after, reason: f.reason }],
  root_published: (f) => ["ca_rotated", { kind: "root", serial: f.serial, stage: "published", activate_at: f.activate_at, not_after: f.not_after }],
  root_activated: (f) => ["ca_rotated", { kind: "root", serial: f.serial, stage: "activated", previous: f.previous }],
  bundle_updated: (f) => ["bundle_updated", { trust_domain: f.trust_domain, authorities: f.roots, sequence: f.spiffe_sequence }],
  // federation.ts: another trust domain's bundle fetched with new roots, or dropped for its age
  federated_bundle_updated: (f) => (text(f.trust_domain) ? ["bundle_updated", { trust_domain: f.trust_domain, authorities: f.roots, sequence: f.sequence, federated: true, expires_at: f.expires_at }] : null),
  federated_bundle_dropped: (f) => (text(f.trust_domain) ? ["bundle_updated", { trust_domain: f.trust_domain, authorities: 0, federated: true, dropped: "max_age", refreshed_at: f.refreshed_at }] : null),
  entry_created: (f) => ["admin", { action: "entry_created", actor: null, detail: `entry ${String(f.entry_id)} for ${String(f.spiffe_id)} (parent ${String(f.parent_id)})`, entry_id: f.entry_id, spiffe_id: f.spiffe_id }],
  entry_deleted: (f) => ["admin", { action: "entry_deleted", actor: null, detail: `entry ${String(f.entry_id)}`, entry_id: f.entry_id }],
  // The token itself is never in the line (only its node and expiry): the audit event has the same.
  token_created: (f) => ["admin", { action: "token_created", actor: null, detail: `join token for node ${String(f.node)}`, node: f.node, expires_at: f.expires_at }],
};

export const SERVER_AUDIT_EVENTS: readonly string[] = Object.keys(MAP);

export function auditingLogger(logger: Logger, audit: Audit): Logger {
  const log = (level: Level, event: string, fields: Fields = {}) => {
    logger.log(level, event, fields);
    const mapped = MAP[event]?.(fields) ?? null;
    if (mapped !== null) audit.emit(mapped[0], Object.fromEntries(Object.entries(mapped[1]).filter(([, v]) => v !== undefined)));
  };
  return {
    log,
    info: (e, f) => log("info", e, f),
    warn: (e, f) => log("warn", e, f),
    error: (e, f) => log("error", e, f),
  };
}
