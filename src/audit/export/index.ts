export * from "./errors.ts";
export { CursorFile } from "./cursor-file.ts";
export { ACTIVE_FILE, FileSource } from "./file-source.ts";
export { EXPORT_DEFAULTS, MAX_BODY_BYTES, OtlpExporter, type EventSource, type ExportCursor, type ExportState, type ExportStatus, type OtlpExporterOptions, type ParsedEvent } from "./exporter.ts";
