/**
 * The strict reader of what ./encode.ts writes, for tests and the test receiver: an OTLP/HTTP
 * JSON `ExportLogsServiceRequest` back to the audit records it carries, in order.
 *
 * Accepted: the message structure of logs.proto (every field of ResourceLogs, ScopeLogs,
 * LogRecord, Resource and InstrumentationScope), each field in the canonical form of
 * ./json-check.ts. Each record must be a tidegate audit record: a `tidegate.seq` intValue, a
 * `tidegate.type` stringValue equal to `eventName`, the severity ./encode.ts gives that type, and
 * a stringValue body that is a JSON object whose seq, type and time match the record.
 * Refused (`otlp_bad_request`, naming the JSON path): anything else, including text that is not
 * JSON, unknown keys, original (snake_case) field names, a 64-bit integer as a JSON number, an
 * enum as a name, two values in one AnyValue, an unknown AnyValue kind, a repeated attribute key.
 */
import { decodeAnyValue, decodeKeyValues } from "./any-value.ts";
import { SEQ_ATTRIBUTE, TYPE_ATTRIBUTE, isoToUnixNano, severityOf } from "./encode.ts";
import { OtlpError } from "./errors.ts";
import { arrayAt, fixed64At, hexIdAt, objectAt, reject, stringAt, uint32At, type Json } from "./json-check.ts";

export interface DecodedRecord {
  readonly seq: number;
  readonly type: string;
  /** The body: the audit line's exact text. */
  readonly line: string;
  readonly timeUnixNano: bigint;
  readonly severityNumber: number;
  /** Every attribute, `tidegate.seq` and `tidegate.type` included. */
  readonly attributes: Readonly<Record<string, unknown>>;
}

const LOG_RECORD_KEYS = [
  "timeUnixNano", "observedTimeUnixNano", "severityNumber", "severityText", "body", "attributes",
  "droppedAttributesCount", "flags", "traceId", "spanId", "eventName",
] as const;

/** `input`: the request body as text, or already parsed. */
export function decodeOtlpLogs(input: unknown): DecodedRecord[] {
  let req = input;
  if (typeof input === "string") {
    try {
      req = JSON.parse(input);
    } catch {
      throw new OtlpError("otlp_bad_request", "audit: otlp request: the body is not JSON");
    }
  }
  const out: DecodedRecord[] = [];
  arrayAt(objectAt(req, "$", ["resourceLogs"]).resourceLogs, "resourceLogs").forEach((rl, i) => {
    const rp = `resourceLogs[${i}]`;
    const r = objectAt(rl, rp, ["resource", "scopeLogs", "schemaUrl"]);
    stringAt(r.schemaUrl, `${rp}.schemaUrl`);
    if (r.resource !== undefined) attributeHolder(r.resource, `${rp}.resource`, ["attributes", "droppedAttributesCount"]);
    arrayAt(r.scopeLogs, `${rp}.scopeLogs`).forEach((sl, j) => {
      const sp = `${rp}.scopeLogs[${j}]`;
      const s = objectAt(sl, sp, ["scope", "logRecords", "schemaUrl"]);
      stringAt(s.schemaUrl, `${sp}.schemaUrl`);
      if (s.scope !== undefined) {
        const scope = attributeHolder(s.scope, `${sp}.scope`, ["name", "version", "attributes", "droppedAttributesCount"]);
        stringAt(scope.name, `${sp}.scope.name`);
        stringAt(scope.version, `${sp}.scope.version`);
      }
      arrayAt(s.logRecords, `${sp}.logRecords`).forEach((lr, k) => out.push(decodeRecord(lr, `${sp}.logRecords[${k}]`)));
    });
  });
  return out;
}

function attributeHolder(v: unknown, path: string, keys: readonly string[]): Json {
  const o = objectAt(v, path, keys);
  decodeKeyValues(o.attributes, `${path}.attributes`);
  uint32At(o.droppedAttributesCount, `${path}.droppedAttributesCount`);
  return o;
}

/** The AnyValue kind an attribute was sent as (the decoded value cannot tell 3 from 3.0). */
function kindOf(attributes: unknown, key: string): string | undefined {
  const kv = (attributes as { key?: string; value?: object }[]).find((a) => (a.key ?? "") === key);
  return kv?.value === undefined ? undefined : Object.keys(kv.value)[0];
}

function decodeRecord(v: unknown, path: string): DecodedRecord {
  const o = objectAt(v, path, LOG_RECORD_KEYS);
  const time = fixed64At(o.timeUnixNano, `${path}.timeUnixNano`);
  fixed64At(o.observedTimeUnixNano, `${path}.observedTimeUnixNano`);
  const severityNumber = uint32At(o.severityNumber, `${path}.severityNumber`);
  if (severityNumber < 1 || severityNumber > 24) reject(`${path}.severityNumber`, `${severityNumber} is not a SeverityNumber from 1 to 24`);
  const severityText = stringAt(o.severityText, `${path}.severityText`);
  const eventName = stringAt(o.eventName, `${path}.eventName`);
  uint32At(o.droppedAttributesCount, `${path}.droppedAttributesCount`);
  uint32At(o.flags, `${path}.flags`);
  hexIdAt(o.traceId, `${path}.traceId`, 16);
  hexIdAt(o.spanId, `${path}.spanId`, 8);
  const line = o.body === undefined ? undefined : decodeAnyValue(o.body, `${path}.body`);
  const attributes = decodeKeyValues(o.attributes, `${path}.attributes`);

  const seq = attributes[SEQ_ATTRIBUTE];
  if (kindOf(o.attributes, SEQ_ATTRIBUTE) !== "intValue" || typeof seq !== "number" || seq < 1) {
    reject(`${path}.attributes`, `no ${SEQ_ATTRIBUTE} intValue that is a positive safe integer`);
  }
  const type = attributes[TYPE_ATTRIBUTE];
  if (typeof type !== "string" || type === "") reject(`${path}.attributes`, `no ${TYPE_ATTRIBUTE} stringValue`);
  if (eventName !== type) reject(`${path}.eventName`, `not the ${TYPE_ATTRIBUTE} attribute`);
  const severity = severityOf(type);
  if (severityNumber !== severity.number || severityText !== severity.text) reject(`${path}.severityNumber`, `want ${severity.number} ${severity.text} for ${JSON.stringify(type)}`);
  if (typeof line !== "string") reject(`${path}.body`, "want the audit line as a stringValue");
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    reject(`${path}.body`, "the audit line is not JSON");
  }
  const p = parsed as { seq?: unknown; type?: unknown; time?: unknown } | null;
  if (typeof p !== "object" || p === null || Array.isArray(p)) reject(`${path}.body`, "the audit line is not a JSON object");
  if (p.seq !== seq || p.type !== type) reject(`${path}.body`, `the audit line's seq or type is not the record's (${SEQ_ATTRIBUTE} ${seq})`);
  if (typeof p.time !== "string" || isoToUnixNano(p.time) !== time) reject(`${path}.timeUnixNano`, "not the audit line's time");
  return { seq, type, line, timeUnixNano: time, severityNumber, attributes };
}
