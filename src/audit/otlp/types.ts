/**
 * The OTLP/JSON shapes the audit exporter sends: `ExportLogsServiceRequest` of
 * opentelemetry-proto `collector/logs/v1` and the messages under it (`logs/v1/logs.proto`,
 * `common/v1/common.proto`, `resource/v1/resource.proto`), in the JSON Protobuf Encoding of the
 * OTLP specification (docs/specification.md#json-protobuf-encoding): lowerCamelCase keys,
 * 64-bit integers (`int64`, `fixed64`) as decimal strings, enums as integers, `bytes` as base64
 * except `traceId`/`spanId` (hex). Only the fields the exporter fills are typed as required.
 */

/** `opentelemetry.proto.common.v1.AnyValue`: at most one key set; `{}` is the empty value. */
export type AnyValue =
  | { stringValue: string }
  | { boolValue: boolean }
  /** int64: a decimal string. */
  | { intValue: string }
  | { doubleValue: number }
  | { arrayValue: { values: AnyValue[] } }
  | { kvlistValue: { values: KeyValue[] } }
  /** bytes: standard base64 with padding. */
  | { bytesValue: string }
  | Record<string, never>;

export interface KeyValue {
  key: string;
  value: AnyValue;
}

/** SeverityNumber (logs.proto): 9 is SEVERITY_NUMBER_INFO, 13 SEVERITY_NUMBER_WARN. */
export const SEVERITY_INFO = 9;
export const SEVERITY_WARN = 13;

export interface LogRecord {
  /** fixed64, nanoseconds since the Unix epoch, as a decimal string. */
  timeUnixNano: string;
  observedTimeUnixNano: string;
  severityNumber: number;
  severityText: string;
  eventName: string;
  body: AnyValue;
  attributes: KeyValue[];
}

export interface ExportLogsServiceRequest {
  resourceLogs: {
    resource: { attributes: KeyValue[] };
    scopeLogs: { scope: { name: string }; logRecords: LogRecord[] }[];
  }[];
}
