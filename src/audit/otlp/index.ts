export * from "./errors.ts";
export type { AnyValue, ExportLogsServiceRequest, KeyValue, LogRecord } from "./types.ts";
export { SEVERITY_INFO, SEVERITY_WARN } from "./types.ts";
export { MAX_DEPTH, decodeAnyValue, encodeAnyValue } from "./any-value.ts";
export { SCOPE_NAME, SEQ_ATTRIBUTE, SERVICE_NAME, TYPE_ATTRIBUTE, WARN_TYPES, encodeLogRecord, encodeOtlpLogs, isoToUnixNano, severityOf, type OtlpResource, type ParsedEvent } from "./encode.ts";
export { decodeOtlpLogs, type DecodedRecord } from "./decode.ts";
