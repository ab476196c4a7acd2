/**
 * fast-check arbitraries of valid audit events (type and fields), for the property tests of the
 * format and of whatever writes or ships it. Strings mix JSON's special characters, non-ASCII,
 * astral and lone-surrogate code units, so escaping and UTF-8 hashing are exercised; every
 * value passes validateEvent.
 */
import fc from "fast-check";
import { SAMPLE_EVENTS } from "./samples.ts";
import { AUDIT_EVENT_TYPES, type AuditEventType } from "./schema.ts";

const UNITS = [..."abz09 _-./:", '"', "\\", "\n", "\r", "\t", "\u0000", "\u001f", "\u007f", "é", "\u2028", "☃", "𝄞", "\ud800", "\udfff", "\ufeff"];

export const text = fc.string({ unit: fc.constantFrom(...UNITS), minLength: 1, maxLength: 24 });
const optText = fc.option(text, { nil: null });
const count = fc.nat({ max: Number.MAX_SAFE_INTEGER });
const hex64 = fc.stringMatching(/^[0-9a-f]{64}$/);
const spiffeId = fc.stringMatching(/^spiffe:\/\/[a-z0-9._-]{1,12}(?:\/[A-Za-z0-9._-]{1,8}){1,3}$/);
const secretName = fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/);
const side = fc.constantFrom("inbound", "egress");
const decision = fc.constantFrom("allow", "deny");
const time = fc.date({ min: new Date("2000-01-01T00:00:00.000Z"), max: new Date("2100-01-01T00:00:00.000Z"), noInvalidDate: true }).map((d) => d.toISOString());
const path = text.map((t) => `/${t.replace(/[?#]/g, "")}`);

const source = fc.record({
  spiffe_id: fc.option(spiffeId, { nil: null }),
  pid: fc.option(count, { nil: null }),
  uid: fc.option(count, { nil: null }),
  cgroup_id: fc.option(fc.oneof(count, fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map(String)), { nil: null }),
  workload: optText,
  exe: optText,
  peer: text,
});
const destination = fc.record({ addr: text, port: fc.integer({ min: 0, max: 65535 }), name: optText });
const duration = fc.double({ min: 0, max: 1e9, noNaN: true, noDefaultInfinity: true });

/** Types with random values; the others use their sample (SAMPLE_EVENTS). */
const RANDOM: Partial<Record<AuditEventType, fc.Arbitrary<Record<string, unknown>>>> = {
  agent_start: fc.record({ version: text, pid: count }),
  admin: fc.record({ action: text, actor: optText, detail: optText }),
  secret_changed: fc.record({ name: secretName, change: fc.constantFrom("set", "removed") }),
  conn_open: fc.record({ conn_id: text, side, src: source, dst: destination, decision, rule: optText, action: optText }),
  conn_close: fc.record(
    {
      conn_id: text, side, outcome: text, bytes_up: count, bytes_down: count, duration_ms: duration,
      reason: text, detail: text, peer_id: spiffeId, upstream: text, resumed: fc.boolean(),
    },
    { requiredKeys: ["conn_id", "side", "outcome", "bytes_up", "bytes_down", "duration_ms"] },
  ),
  deny: fc.record({ side, conn_id: optText, src: source, dst: destination, rule: optText, reason: text }),
  http_request: fc.record(
    {
      conn_id: text, side, method: text, target: path, host: text, status: fc.option(fc.integer({ min: 100, max: 599 }), { nil: null }),
      outcome: text, rule: optText, duration_ms: duration, injected: fc.array(secretName, { maxLength: 3 }),
      placeholder: fc.array(secretName, { maxLength: 3 }), reason: text,
    },
    { requiredKeys: ["conn_id", "side", "method", "target", "host", "status", "outcome", "rule", "duration_ms"] },
  ),
  tool_call: fc.record({
    conn_id: optText, caller_id: text, server_id: text, tool: text, args_sha256: hex64, decision, rule: optText,
    duration_ms: fc.option(duration, { nil: null }), is_error: fc.option(fc.boolean(), { nil: null }),
  }),
  audit_gap: fc.record({ dropped: fc.integer({ min: 1, max: 1e6 }), since: time, until: time }),
  mcp_denied: fc.record({ conn_id: optText, caller_id: text, server_id: text, method: text, target: text, rule: optText, reason: text }),
};

/** Fields a later version might add: any JSON value under a name this one does not know. */
const extra = fc.option(fc.record({ x_later: fc.jsonValue({ maxDepth: 2 }) }), { nil: {} });

/** One event that is not a checkpoint: its type and fields. */
export const auditEvent: fc.Arbitrary<{ type: AuditEventType; fields: Record<string, unknown> }> = fc
  .constantFrom(...AUDIT_EVENT_TYPES.filter((t) => t !== "checkpoint"))
  .chain((type) => fc.tuple(fc.constant(type), RANDOM[type] ?? fc.constant(SAMPLE_EVENTS[type] as Record<string, unknown>), extra))
  .map(([type, fields, more]) => ({ type, fields: { ...fields, ...more } }));
