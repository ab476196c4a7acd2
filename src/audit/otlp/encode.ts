/**
 * Audit events as an OTLP/HTTP JSON `ExportLogsServiceRequest` (opentelemetry-proto
 * `collector/logs/v1`; JSON Protobuf Encoding of the OTLP specification, see ./types.ts).
 *
 * The mapping (docs/audit.md, "Export"):
 * - one ResourceLogs whose resource carries `service.name` = "tidegate", `service.instance.id` =
 *   the agent's instance and `host.name` when given; one ScopeLogs with scope "tidegate.audit".
 * - one LogRecord per event, in the order given: `body` is the raw line as a stringValue (so a
 *   collector keeps the exact bytes the chain hashes: `prev` of the next line covers them),
 *   `eventName` the type, `timeUnixNano` and `observedTimeUnixNano` the event's time (the event
 *   originates here, so both are the same instant; the body is the same on every retry),
 *   severity 9 "INFO", or 13 "WARN" for deny, policy_rejected and audit_gap.
 * - attributes: `tidegate.seq` (intValue), `tidegate.type`, then every field under its own name
 *   (objects as kvlistValue, see ./any-value.ts). A field named like one of the two is refused.
 * Refused with `otlp_bad_event`: a seq that is not a positive safe integer, an empty type, a time
 * that is not `YYYY-MM-DDTHH:MM:SS[.fraction]Z` from 1970 to the fixed64 limit (year 2554), a line
 * that is not a string, a field value that is not JSON data.
 */
import { encodeAnyValue } from "./any-value.ts";
import { OtlpError } from "./errors.ts";
import { SEVERITY_INFO, SEVERITY_WARN, type ExportLogsServiceRequest, type KeyValue, type LogRecord } from "./types.ts";

/** One parsed audit line: `fields` is the line's object without seq, time, type and prev. */
export interface ParsedEvent {
  readonly seq: number;
  readonly time: string;
  readonly type: string;
  readonly fields: Readonly<Record<string, unknown>>;
  /** The line's exact text, without its "\n". */
  readonly line: string;
}

export interface OtlpResource {
  /** The agent's instance name: `service.instance.id`. */
  readonly instance: string;
  /** `host.name`, left out when absent or empty. */
  readonly hostName?: string;
}

export const SERVICE_NAME = "tidegate";
export const SCOPE_NAME = "tidegate.audit";
export const SEQ_ATTRIBUTE = "tidegate.seq";
export const TYPE_ATTRIBUTE = "tidegate.type";

/** Events a reader should notice: a refusal, a rejected policy, lost events. */
export const WARN_TYPES: readonly string[] = ["deny", "policy_rejected", "audit_gap"];

export function severityOf(type: string): { number: number; text: "INFO" | "WARN" } {
  return WARN_TYPES.includes(type) ? { number: SEVERITY_WARN, text: "WARN" } : { number: SEVERITY_INFO, text: "INFO" };
}

const ISO_UTC = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z$/;
const UINT64_MAX = 2n ** 64n - 1n;

/**
 * Nanoseconds since the Unix epoch of an ISO 8601 UTC time (every fraction digit kept), or null
 * for another form, an impossible date (February 30, 24:00, a leap second), a time before 1970
 * or past the fixed64 range.
 */
export function isoToUnixNano(iso: string): bigint | null {
  const m = ISO_UTC.exec(iso);
  if (m === null) return null;
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const ms = Date.UTC(y, mo - 1, d, h, mi, s);
  const t = new Date(ms);
  const same = t.getUTCFullYear() === y && t.getUTCMonth() === mo - 1 && t.getUTCDate() === d && t.getUTCHours() === h && t.getUTCMinutes() === mi && t.getUTCSeconds() === s;
  if (!same || ms < 0) return null;
  const nanos = BigInt(ms) * 1_000_000n + BigInt((m[7] ?? "").padEnd(9, "0"));
  return nanos <= UINT64_MAX ? nanos : null;
}

function bad(e: { seq: unknown }, why: string): OtlpError {
  const which = typeof e.seq === "number" && Number.isSafeInteger(e.seq) ? `event seq ${e.seq}` : "an event";
  return new OtlpError("otlp_bad_event", `audit: otlp: ${which}: ${why}`);
}

export function encodeLogRecord(e: ParsedEvent): LogRecord {
  if (!Number.isSafeInteger(e.seq) || e.seq < 1) throw bad(e, "seq is not a positive safe integer");
  if (typeof e.type !== "string" || e.type === "") throw bad(e, "type is not a non-empty string");
  if (typeof e.line !== "string") throw bad(e, "line is not a string");
  const nanos = typeof e.time === "string" ? isoToUnixNano(e.time) : null;
  if (nanos === null) throw bad(e, "time is not an ISO 8601 UTC time from 1970 to 2554");
  if (typeof e.fields !== "object" || e.fields === null || Array.isArray(e.fields)) throw bad(e, "fields is not an object");
  const attributes: KeyValue[] = [
    { key: SEQ_ATTRIBUTE, value: { intValue: String(e.seq) } },
    { key: TYPE_ATTRIBUTE, value: { stringValue: e.type } },
  ];
  for (const [key, value] of Object.entries(e.fields)) {
    if (key === SEQ_ATTRIBUTE || key === TYPE_ATTRIBUTE) throw bad(e, `field ${JSON.stringify(key)} would repeat an attribute`);
    attributes.push({ key, value: encodeAnyValue(value, `event seq ${e.seq} field ${key}`) });
  }
  const severity = severityOf(e.type);
  return {
    timeUnixNano: String(nanos),
    observedTimeUnixNano: String(nanos),
    severityNumber: severity.number,
    severityText: severity.text,
    eventName: e.type,
    body: { stringValue: e.line },
    attributes,
  };
}

export function resourceAttributes(r: OtlpResource): KeyValue[] {
  if (typeof r.instance !== "string" || r.instance === "") throw new OtlpError("otlp_bad_event", "audit: otlp: the instance (service.instance.id) is empty");
  const attrs: KeyValue[] = [
    { key: "service.name", value: { stringValue: SERVICE_NAME } },
    { key: "service.instance.id", value: { stringValue: r.instance } },
  ];
  if (r.hostName !== undefined && r.hostName !== "") attrs.push({ key: "host.name", value: { stringValue: r.hostName } });
  return attrs;
}

/** The request carrying `events` (in that order); an empty list gives a request with no record. */
export function encodeOtlpLogs(events: readonly ParsedEvent[], resource: OtlpResource): ExportLogsServiceRequest {
  return {
    resourceLogs: [
      {
        resource: { attributes: resourceAttributes(resource) },
        scopeLogs: [{ scope: { name: SCOPE_NAME }, logRecords: events.map(encodeLogRecord) }],
      },
    ],
  };
}
