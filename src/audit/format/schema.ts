/**
 * The audit event schema (DESIGN.md section 8; docs/audit.md, "Events"): for each type its
 * required fields (nullable ones present with null) and its optional ones. Objects are loose: a
 * field this version does not know passes, so later versions can add fields without breaking the
 * verification of older tools. Any event may carry the common fields `instance` and `node_id`.
 *
 * Rejected by `validateEvent` (AuditError `audit_bad_event`): an unknown type, a missing
 * required field, or a field of the wrong shape; the message names the type and the first bad
 * field's path.
 */
import * as v from "valibot";
import { auditError, quote } from "./errors.ts";
import {
  base64Der, base64UrlSig, count, decision, destination, durationMs, hex64, isoTime, optText, pathOnly,
  positive, secretName, side, source, spiffeId, text,
} from "./fields.ts";

const COMMON = { instance: v.optional(text), node_id: v.optional(text) };

const nullableCount = v.nullable(count);

/** Each type's fields other than `type` and the common ones. */
const ENTRIES = {
  agent_start: { version: text, pid: count },
  /** With capture, the drain before the stop (docs/proxy.md, "Stopping"): connections open when it began, those that finished, those cut at the deadline. */
  agent_stop: { reason: text, in_flight: v.optional(count), finished: v.optional(count), cut: v.optional(count), drain_ms: v.optional(durationMs), drain_timeout_ms: v.optional(durationMs) },
  policy_loaded: { rules: count, sha256: hex64 },
  policy_rejected: { reason: text },
  node_attested: { node_id: text, method: text },
  svid_issued: { spiffe_id: spiffeId, serial: text, not_after: isoTime },
  svid_rotated: { spiffe_id: spiffeId, serial: text, not_after: isoTime },
  ca_rotated: { kind: v.picklist(["signing", "root"]), serial: text },
  bundle_updated: { trust_domain: text, authorities: count },
  secret_changed: { name: secretName, change: v.picklist(["set", "removed"]) },
  conn_open: { conn_id: text, side, src: source, dst: destination, decision, rule: optText, action: optText },
  conn_close: {
    conn_id: text,
    side,
    outcome: text,
    bytes_up: count,
    bytes_down: count,
    duration_ms: durationMs,
    reason: v.optional(text),
    detail: v.optional(text),
    peer_id: v.optional(spiffeId),
    upstream: v.optional(text),
    resumed: v.optional(v.boolean()),
  },
  deny: { side, conn_id: optText, src: source, dst: destination, rule: optText, reason: text, detail: v.optional(text) },
  http_request: {
    conn_id: text,
    side,
    /** null: the request broke HTTP/1.1 before its head was whole (then target and host are null too). */
    method: optText,
    target: v.nullable(pathOnly),
    host: optText,
    status: v.nullable(v.pipe(v.number(), v.integer("is not an integer"), v.minValue(100, "is not a status"), v.maxValue(599, "is not a status"))),
    outcome: text,
    rule: optText,
    duration_ms: durationMs,
    injected: v.optional(v.array(secretName)),
    placeholder: v.optional(v.array(secretName)),
    reason: v.optional(text),
  },
  tool_call: {
    conn_id: optText,
    caller_id: text,
    server_id: text,
    tool: text,
    args_sha256: hex64,
    decision,
    rule: optText,
    duration_ms: v.nullable(durationMs),
    is_error: v.nullable(v.boolean()),
    /** A refused call: why. */
    reason: v.optional(text),
    /** "no_answer": an allowed call no answer came for (docs/mcp.md, "Audit"). */
    outcome: v.optional(v.literal("no_answer")),
    /** The answer came on another stream of the call's session (a resumed one). */
    resumed: v.optional(v.literal(true)),
  },
  tool_definition_changed: { server_id: text, tool: text, old_sha256: v.nullable(hex64), new_sha256: hex64 },
  /** An MCP request other than tools/call refused by its rule (a resource, a prompt). */
  mcp_denied: { conn_id: optText, caller_id: text, server_id: text, method: text, target: text, rule: optText, reason: text },
  checkpoint: {
    signer: spiffeId,
    alg: v.literal("ES256"),
    covers: v.looseObject({ seq: count, hash: hex64 }),
    events: count,
    chain: v.pipe(v.array(base64Der), v.minLength(1, "is empty"), v.maxLength(8, "has more than 8 certificates")),
    sig: base64UrlSig,
  },
  admin: { action: text, actor: optText, detail: optText },
  audit_recovered: { torn_bytes: positive, file: text },
  audit_gap: { dropped: positive, since: isoTime, until: isoTime },
} as const satisfies Record<string, v.ObjectEntries>;

export type AuditEventType = keyof typeof ENTRIES;

/** Every event type, in the order docs/audit.md lists them. */
export const AUDIT_EVENT_TYPES = Object.freeze(Object.keys(ENTRIES)) as readonly AuditEventType[];

const TYPES: ReadonlySet<string> = new Set(AUDIT_EVENT_TYPES);

export function isAuditEventType(t: unknown): t is AuditEventType {
  return typeof t === "string" && TYPES.has(t);
}

type Entries<T extends AuditEventType> = Omit<typeof COMMON, keyof (typeof ENTRIES)[T]> & (typeof ENTRIES)[T];

/** The fields of a `T` event as formatLine takes them (without seq, time, type, prev). */
export type AuditFields<T extends AuditEventType> = NonNullable<v.ObjectSchema<Entries<T>, undefined>["~types"]>["output"];

/** A validated `T` event: its fields and its type (seq, time and prev too when it came from a line). */
export type AuditEventOf<T extends AuditEventType> = AuditFields<T> & { readonly type: T } & Record<string, unknown>;

export type AuditEvent = { [T in AuditEventType]: AuditEventOf<T> }[AuditEventType];

const SCHEMAS = new Map<string, v.GenericSchema>(
  AUDIT_EVENT_TYPES.map((t) => [t, v.looseObject({ ...COMMON, ...ENTRIES[t], type: v.literal(t) }) as v.GenericSchema]),
);

/** The names of a type's required fields, then its optional ones (for docs/audit.md's test). */
export function fieldsOf(type: AuditEventType): { required: string[]; optional: string[] } {
  const entries: v.ObjectEntries = ENTRIES[type];
  const required: string[] = [];
  const optional: string[] = [];
  for (const [name, schema] of Object.entries(entries)) (schema.type === "optional" ? optional : required).push(name);
  return { required, optional };
}

/** What is wrong with a field, without repeating its value. */
function why(issue: v.GenericIssue): string {
  if (issue.received === "undefined") return "is missing";
  if (issue.kind === "schema") return `is not ${issue.expected ?? "valid"}`;
  return issue.message;
}

/**
 * `obj` checked against the schema of its `type`; returns it unchanged (typed). Throws AuditError
 * `audit_bad_event` naming the type and the first bad field.
 */
export function validateEvent(obj: unknown): AuditEvent {
  if (typeof obj !== "object" || obj === null || Array.isArray(obj)) throw auditError("audit_bad_event", "event is not an object");
  const type = (obj as { type?: unknown }).type;
  const schema = typeof type === "string" ? SCHEMAS.get(type) : undefined;
  if (schema === undefined) {
    throw auditError("audit_bad_event", typeof type === "string" ? `unknown event type ${quote(type)}` : "event has no type");
  }
  const r = v.safeParse(schema, obj, { abortEarly: true });
  if (!r.success) {
    const issue = r.issues[0];
    throw auditError("audit_bad_event", `${type} event: field ${(issue && v.getDotPath(issue)) ?? "?"} ${issue === undefined ? "is invalid" : why(issue)}`);
  }
  return obj as AuditEvent;
}
