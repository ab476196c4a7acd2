export * from "./errors.ts";
export { GENESIS_PREV, formatLine, parseLine, sha256Hex, type ParsedLine } from "./line.ts";
export { AUDIT_EVENT_TYPES, fieldsOf, isAuditEventType, validateEvent, type AuditEvent, type AuditEventOf, type AuditEventType, type AuditFields } from "./schema.ts";
export { CHECKPOINT_ALG, CHECKPOINT_CONTEXT, buildCheckpointFields, checkpointPayload, type CheckpointFields } from "./checkpoint.ts";
export { verifyAudit, type AuditFile, type AuditState, type VerifyBreak, type VerifyInput, type VerifyReport } from "./verify.ts";
export { CUT_NOTE, cutLongText, cutText } from "./cut.ts";
export { TEXT_MAX } from "./fields.ts";
export { ChainBuilder, subtleSigner, type CheckpointSigner } from "./chain-builder.ts";
