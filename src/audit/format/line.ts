/**
 * One audit line (docs/audit.md, "Line format"): canonical JSON of one object, UTF-8, written
 * with a "\n" after it:
 *
 *   {"seq":N,"time":"<toISOString()>","type":"<type>", ...fields..., "prev":"<64 hex>"}
 *
 * `seq` counts from 1 across rotated files; `prev` is the SHA-256 (hex) of the previous line's
 * bytes without its "\n", GENESIS_PREV for seq 1. The hash covers the raw bytes, so a reader
 * never re-serialises to check it.
 *
 * Guaranteed: every line formatLine returns is accepted by parseLine (given a valid event).
 * Rejected by parseLine (AuditError `audit_malformed_line`): text that is not JSON of an object;
 * a seq that is not a positive safe integer; a time that is not toISOString() output; an unknown
 * type; a prev that is not 64 lowercase hex; seq, time, type not first or prev not last; and any
 * text that is not exactly what JSON.stringify gives for the parsed object: whitespace, other
 * escapes, a key given twice (JSON.parse would keep only the last, so two readers could
 * disagree on what a hashed line says).
 */
import { subtle } from "../../x509/engine.ts";
import { toArrayBuffer, toHex } from "../../x509/encoding.ts";
import { auditError, quote } from "./errors.ts";
import { isAuditEventType, type AuditEventType } from "./schema.ts";
import { isHex64, isIsoTime } from "./fields.ts";

/** The prev of the chain's first line (seq 1). */
export const GENESIS_PREV = "0".repeat(64);

/** Names formatLine writes itself; fields may not repeat them. */
const RESERVED: ReadonlySet<string> = new Set(["seq", "time", "type", "prev"]);
/** Integer-like keys: JSON.stringify and JSON.parse move them first, breaking the line's order. */
const INDEX_KEY = /^\d+$/;

const encoder = new TextEncoder();

/**
 * The line for one event, without its "\n". Throws AuditError `audit_bad_event` for a seq that
 * is not a positive safe integer, an invalid or out-of-range time, an unknown type, a prev that
 * is not 64 lowercase hex, or a field named seq, time, type, prev or with an integer-like name.
 * It does not check the type's schema (validateEvent does; the sink's emitters are typed).
 */
export function formatLine(seq: number, time: Date, type: AuditEventType, fields: Readonly<Record<string, unknown>>, prev: string): string {
  if (!Number.isSafeInteger(seq) || seq < 1) throw auditError("audit_bad_event", `seq ${seq} is not a positive integer`);
  const t = Number.isFinite(time.getTime()) ? time.toISOString() : "";
  if (!isIsoTime(t)) throw auditError("audit_bad_event", "time is not a date between the years 0000 and 9999");
  if (!isAuditEventType(type)) throw auditError("audit_bad_event", `unknown event type ${quote(String(type))}`);
  if (!isHex64(prev)) throw auditError("audit_bad_event", "prev is not 64 lowercase hex digits");
  for (const k of Object.keys(fields)) {
    if (RESERVED.has(k) || INDEX_KEY.test(k)) throw auditError("audit_bad_event", `${type} event: field name ${quote(k)} is reserved`);
  }
  const body = JSON.stringify(fields);
  const middle = body.length > 2 ? `${body.slice(1, -1)},` : "";
  return `{"seq":${seq},"time":"${t}","type":"${type}",${middle}"prev":"${prev}"}`;
}

/** Lowercase hex SHA-256 of `data` (a string is hashed as its UTF-8 bytes). */
export async function sha256Hex(data: string | Uint8Array): Promise<string> {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  return toHex(new Uint8Array(await subtle.digest("SHA-256", toArrayBuffer(bytes))));
}

/** A line that parsed: its common fields, and the whole object (common fields included). */
export interface ParsedLine {
  readonly seq: number;
  readonly time: string;
  readonly type: AuditEventType;
  readonly prev: string;
  readonly event: Readonly<Record<string, unknown>>;
}

function malformed(why: string): never {
  throw auditError("audit_malformed_line", why);
}

/** Parses one line (without its "\n"); see the header for what is rejected. Schema: validateEvent. */
export function parseLine(text: string): ParsedLine {
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch {
    malformed("line is not JSON");
  }
  if (typeof obj !== "object" || obj === null || Array.isArray(obj)) malformed("line is not a JSON object");
  const o = obj as Record<string, unknown>;
  const { seq, time, type, prev } = o;
  if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 1) malformed("seq is not a positive integer");
  if (!isIsoTime(time)) malformed(`seq ${seq}: time is not an ISO 8601 UTC time with milliseconds`);
  if (!isAuditEventType(type)) malformed(`seq ${seq}: unknown event type ${typeof type === "string" ? quote(type) : "(not a string)"}`);
  if (!isHex64(prev)) malformed(`seq ${seq}: prev is not 64 lowercase hex digits`);
  const keys = Object.keys(o);
  if (keys[0] !== "seq" || keys[1] !== "time" || keys[2] !== "type" || keys[keys.length - 1] !== "prev") {
    malformed(`seq ${seq}: seq, time and type must come first and prev last`);
  }
  if (JSON.stringify(o) !== text) malformed(`seq ${seq}: line is not in canonical form (spacing, escapes or a repeated key)`);
  return { seq, time, type, prev, event: o };
}
