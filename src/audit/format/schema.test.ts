// The event schema (docs/audit.md, "Events"): every type's sample passes, every required field is
// required, each field's shape is checked, unknown fields pass, and the docs list every field.
import { assert, describe, errorOf, readFixture, test } from "../../../test/shim.ts";
import { AuditError } from "./errors.ts";
import { AUDIT_EVENT_TYPES, fieldsOf, validateEvent, type AuditEventType } from "./schema.ts";
import { SAMPLE_EVENTS } from "./samples.ts";

const sample = (type: AuditEventType, over: Record<string, unknown> = {}) => ({ ...SAMPLE_EVENTS[type], type, ...over });

describe("event types", () => {
  test("those of DESIGN.md section 8, and the log's own two", () => {
    assert.deepEqual([...AUDIT_EVENT_TYPES].sort(), [
      "admin", "agent_start", "agent_stop", "audit_gap", "audit_recovered", "bundle_updated", "ca_rotated", "checkpoint", "conn_close",
      "conn_open", "deny", "http_request", "mcp_denied", "node_attested", "policy_loaded", "policy_rejected", "secret_changed", "svid_issued",
      "svid_rotated", "tool_call", "tool_definition_changed",
    ]);
  });

  test("fieldsOf: required then optional, in the schema's order", () => {
    assert.deepEqual(fieldsOf("conn_close"), {
      required: ["conn_id", "side", "outcome", "bytes_up", "bytes_down", "duration_ms"],
      optional: ["reason", "detail", "peer_id", "upstream", "resumed"],
    });
  });
});

describe("validateEvent accepts", () => {
  for (const type of AUDIT_EVENT_TYPES) {
    test(`the ${type} sample`, () => {
      const ev = sample(type);
      assert.equal(validateEvent(ev), ev);
    });
  }

  test("unknown fields (later versions add some), and the common ones", () => {
    validateEvent(sample("conn_open", { future_field: { x: [1] }, instance: "prod", node_id: "node-1" }));
    validateEvent(sample("conn_open", { src: { ...SAMPLE_EVENTS.conn_open.src, netns: 4026531840 } }));
  });

  const good: [string, AuditEventType, Record<string, unknown>][] = [
    ["null in every nullable source field", "deny", { src: { spiffe_id: null, pid: null, uid: null, cgroup_id: null, workload: null, exe: null, peer: "10.0.0.2:4000" } }],
    ["a u64 cgroup id as decimal text", "conn_open", { src: { ...SAMPLE_EVENTS.conn_open.src, cgroup_id: "18446744073709551615" } }],
    ["an inbound connection", "conn_open", { side: "inbound", decision: "deny", rule: null, action: null }],
    ["a request without status (refused before the upstream answered)", "http_request", { status: null, outcome: "refused", placeholder: ["github_token"], reason: "path not allowed" }],
    ["every optional conn_close field", "conn_close", { reason: "peer reset", detail: "ECONNRESET", peer_id: "spiffe://partner.com/mcp/email", upstream: "140.82.112.6:443", resumed: true }],
    ["a first tool definition", "tool_definition_changed", { old_sha256: null }],
    ["a tool call without duration", "tool_call", { conn_id: null, duration_ms: null, is_error: null, decision: "deny", rule: null }],
    ["a refused tool call, with its reason", "tool_call", { duration_ms: null, is_error: null, decision: "deny", reason: "tool_denied" }],
    ["a tool call no answer came for", "tool_call", { duration_ms: null, is_error: null, outcome: "no_answer" }],
    ["a tool call answered on a resumed stream", "tool_call", { resumed: true }],
    ["a root CA rotation", "ca_rotated", { kind: "root" }],
    ["a removed secret", "secret_changed", { change: "removed" }],
    ["a checkpoint with 8 certificates", "checkpoint", { chain: Array(8).fill("MIIB") }],
    ["a checkpoint covering seq 0", "checkpoint", { covers: { seq: 0, hash: "0".repeat(64) }, events: 0 }],
  ];
  for (const [name, type, over] of good) test(name, () => void validateEvent(sample(type, over)));
});

describe("validateEvent rejects", () => {
  for (const type of AUDIT_EVENT_TYPES) {
    for (const field of fieldsOf(type).required) {
      test(`${type} without ${field}`, () => {
        const ev: Record<string, unknown> = sample(type);
        delete ev[field];
        const e = errorOf(() => validateEvent(ev), AuditError);
        assert.equal(e.code, "audit_bad_event");
        assert.equal(e.message, `audit: ${type} event: field ${field} is missing`);
      });
    }
  }

  const bad: [string, AuditEventType, Record<string, unknown>, string][] = [
    ["a query string in an HTTP target", "http_request", { target: "/x?token=abc" }, "target"],
    ["a fragment in an HTTP target", "http_request", { target: "/x#frag" }, "target"],
    ["an empty target", "http_request", { target: "" }, "target"],
    ["an injected name that is not a secret name", "http_request", { injected: ["a b"] }, "injected.0"],
    ["a placeholder that is not a list", "http_request", { placeholder: "github_token" }, "placeholder"],
    ["status 99", "http_request", { status: 99 }, "status"],
    ["status 600", "http_request", { status: 600 }, "status"],
    ["a side other than inbound or egress", "conn_open", { side: "ingress" }, "side"],
    ["a decision other than allow or deny", "conn_open", { decision: "maybe" }, "decision"],
    ["a negative pid", "conn_open", { src: { ...SAMPLE_EVENTS.conn_open.src, pid: -1 } }, "src.pid"],
    ["a source without peer", "deny", { src: { ...SAMPLE_EVENTS.deny.src, peer: undefined } }, "src.peer"],
    ["a source SPIFFE ID that is not one", "conn_open", { src: { ...SAMPLE_EVENTS.conn_open.src, spiffe_id: "https://example.org/a" } }, "src.spiffe_id"],
    ["a cgroup id with a leading zero", "conn_open", { src: { ...SAMPLE_EVENTS.conn_open.src, cgroup_id: "01" } }, "src.cgroup_id"],
    ["port 65536", "conn_open", { dst: { ...SAMPLE_EVENTS.conn_open.dst, port: 65536 } }, "dst.port"],
    ["a destination that is a string", "conn_open", { dst: "1.2.3.4:443" }, "dst"],
    ["fractional bytes", "conn_close", { bytes_up: 1.5 }, "bytes_up"],
    ["a negative duration", "conn_close", { duration_ms: -1 }, "duration_ms"],
    ["resumed as a string", "conn_close", { resumed: "yes" }, "resumed"],
    ["a peer id that is not a SPIFFE ID", "conn_close", { peer_id: "partner" }, "peer_id"],
    ["args_sha256 in uppercase", "tool_call", { args_sha256: "A".repeat(64) }, "args_sha256"],
    ["is_error as 0", "tool_call", { is_error: 0 }, "is_error"],
    ["a tool call outcome other than no_answer", "tool_call", { outcome: "timeout" }, "outcome"],
    ["resumed false on a tool call (absent when not resumed)", "tool_call", { resumed: false }, "resumed"],
    ["a secret name with a space", "secret_changed", { name: "my token" }, "name"],
    ["a secret change other than set or removed", "secret_changed", { change: "rotated" }, "change"],
    ["a CA kind other than signing or root", "ca_rotated", { kind: "intermediate" }, "kind"],
    ["not_after without milliseconds", "svid_issued", { not_after: "2026-11-26T18:00:00Z" }, "not_after"],
    ["a checkpoint alg other than ES256", "checkpoint", { alg: "RS256" }, "alg"],
    ["a checkpoint sig of 63 bytes", "checkpoint", { sig: "A".repeat(84) }, "sig"],
    ["a checkpoint sig in standard base64", "checkpoint", { sig: `${"A".repeat(85)}+` }, "sig"],
    ["a checkpoint without certificates", "checkpoint", { chain: [] }, "chain"],
    ["a checkpoint with 9 certificates", "checkpoint", { chain: Array(9).fill("MIIB") }, "chain"],
    ["a checkpoint certificate that is not base64", "checkpoint", { chain: ["MII B"] }, "chain.0"],
    ["a checkpoint covers hash that is not hex", "checkpoint", { covers: { seq: 1, hash: "x" } }, "covers.hash"],
    ["a checkpoint signer that is not a SPIFFE ID", "checkpoint", { signer: "node-1" }, "signer"],
    ["torn_bytes 0", "audit_recovered", { torn_bytes: 0 }, "torn_bytes"],
    ["dropped 0", "audit_gap", { dropped: 0 }, "dropped"],
    ["a gap's since that is not a time", "audit_gap", { since: "yesterday" }, "since"],
    ["an instance that is a number", "agent_start", { instance: 5 }, "instance"],
    ["an empty node_id", "node_attested", { node_id: "" }, "node_id"],
    ["a text field over 65536 characters", "agent_stop", { reason: "x".repeat(65537) }, "reason"],
  ];
  for (const [name, type, over, field] of bad) {
    test(name, () => {
      const e = errorOf(() => validateEvent(sample(type, over)), AuditError);
      assert.equal(e.code, "audit_bad_event");
      assert.match(e.message, new RegExp(`^audit: ${type} event: field ${field.replace(".", "\\.")} `));
    });
  }

  test("the message never repeats a field's value", () => {
    const e = errorOf(() => validateEvent(sample("http_request", { target: "/x?token=s3cr3t" })), AuditError);
    assert.ok(!e.message.includes("s3cr3t"), e.message);
  });

  const notEvents: [string, unknown, RegExp][] = [
    ["an unknown type", { type: "conn_opened" }, /unknown event type "conn_opened"/],
    ["no type", { reason: "x" }, /has no type/],
    ["a type that is not a string", { type: 1 }, /has no type/],
    ["null", null, /not an object/],
    ["an array", [], /not an object/],
  ];
  for (const [name, ev, msg] of notEvents) {
    test(name, () => {
      const e = errorOf(() => validateEvent(ev), AuditError);
      assert.equal(e.code, "audit_bad_event");
      assert.match(e.message, msg);
    });
  }
});

describe("docs/audit.md", () => {
  test("lists every type with each of its fields, required and optional", async () => {
    const doc = new TextDecoder().decode(await readFixture("docs/audit.md"));
    for (const type of AUDIT_EVENT_TYPES) {
      const row = doc.split("\n").find((l) => l.startsWith(`| \`${type}\` |`));
      assert.ok(row !== undefined, `no row for ${type}`);
      const [, required = "", optional = ""] = row.split(" | ");
      const names = (cell: string) => [...cell.matchAll(/`([a-z_0-9.]+)`/g)].map((m) => m[1]!.split(".")[0]!);
      const { required: req, optional: opt } = fieldsOf(type);
      assert.deepEqual([...new Set(names(required))], req, `required fields of ${type}`);
      assert.deepEqual([...new Set(names(optional))], opt, `optional fields of ${type}`);
    }
  });

  test("names every error code", async () => {
    const doc = new TextDecoder().decode(await readFixture("docs/audit.md"));
    const { AUDIT_ERROR_CODES } = await import("./errors.ts");
    for (const code of AUDIT_ERROR_CODES) assert.ok(doc.includes(`\`${code}\``), code);
  });
});
