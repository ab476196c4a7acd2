/**
 * One valid event of each type, with every required field, for tests (the schema's, the sink's,
 * the exporter's) and as the examples of docs/audit.md. Typed with AuditFields, so a field
 * renamed in the schema fails the type check here first.
 */
import type { AuditEventType, AuditFields } from "./schema.ts";

const HASH_A = "a".repeat(64);
const HASH_B = "b".repeat(64);
const SRC = { spiffe_id: "spiffe://example.org/agent/claude", pid: 4242, uid: 1000, cgroup_id: 8123, workload: "claude", exe: "/usr/bin/node", peer: "127.0.0.1:51234" };
const DST = { addr: "140.82.112.6", port: 443, name: "api.github.com" };

export const SAMPLE_EVENTS: { readonly [T in AuditEventType]: AuditFields<T> } = {
  agent_start: { version: "0.1.0", pid: 1234 },
  agent_stop: { reason: "signal SIGTERM" },
  policy_loaded: { rules: 7, sha256: HASH_A },
  policy_rejected: { reason: "policy: /etc/tidegate/policy.yaml:12: egress.0.to.port: is not a port" },
  node_attested: { node_id: "node-1", method: "join_token" },
  svid_issued: { spiffe_id: "spiffe://example.org/mcp/github", serial: "5f3a9c", not_after: "2026-11-26T18:00:00.000Z" },
  svid_rotated: { spiffe_id: "spiffe://example.org/mcp/github", serial: "5f3a9d", not_after: "2026-11-26T19:00:00.000Z" },
  ca_rotated: { kind: "signing", serial: "01ab" },
  bundle_updated: { trust_domain: "example.org", authorities: 2 },
  secret_changed: { name: "github_token", change: "set" },
  conn_open: { conn_id: "c-1f2e", side: "egress", src: SRC, dst: DST, decision: "allow", rule: "github-api", action: "intercept" },
  conn_close: { conn_id: "c-1f2e", side: "egress", outcome: "closed", bytes_up: 1024, bytes_down: 20480, duration_ms: 152 },
  deny: { side: "egress", conn_id: null, src: SRC, dst: { addr: "10.9.9.9", port: 22, name: null }, rule: null, reason: "no rule allows this destination" },
  http_request: {
    conn_id: "c-1f2e",
    side: "egress",
    method: "GET",
    target: "/repos/acme/app/issues",
    host: "api.github.com",
    status: 200,
    outcome: "ok",
    rule: "github-api",
    duration_ms: 87.5,
    injected: ["github_token"],
  },
  tool_call: {
    conn_id: "c-77aa",
    caller_id: "spiffe://example.org/agent/claude",
    server_id: "spiffe://partner.com/mcp/email",
    tool: "send_email",
    args_sha256: HASH_B,
    decision: "allow",
    rule: "partner-email",
    duration_ms: 40,
    is_error: false,
  },
  tool_definition_changed: { server_id: "spiffe://partner.com/mcp/email", tool: "send_email", old_sha256: HASH_A, new_sha256: HASH_B },
  mcp_denied: {
    conn_id: "c-77aa",
    caller_id: "spiffe://example.org/agent/claude",
    server_id: "spiffe://example.org/mcp/fs",
    method: "resources/read",
    target: "file:///etc/secret.conf",
    rule: "fs-readers",
    reason: "resource_denied",
  },
  checkpoint: {
    signer: "spiffe://example.org/tidegate/agent/node-1",
    alg: "ES256",
    covers: { seq: 41, hash: HASH_A },
    events: 41,
    chain: ["MIIB"],
    sig: "A".repeat(86),
  },
  admin: { action: "secret set", actor: "root", detail: null },
  audit_recovered: { torn_bytes: 57, file: "audit-00000000000000000001.jsonl" },
  audit_gap: { dropped: 12, since: "2026-11-26T17:00:00.000Z", until: "2026-11-26T17:00:03.500Z" },
};
