/**
 * An audit sink in memory, for tests: each event as `{ type, ...fields }`, checked against the
 * event schema as it is emitted, so a test of an emitter fails on a field the log's verifier
 * would reject (the real sink does not validate: its emitters are typed and tested here).
 */
import { validateEvent, type AuditEventType } from "../format/index.ts";
import type { Audit, Fields } from "./audit-log.ts";

export interface MemoryAudit extends Audit {
  readonly events: Record<string, unknown>[];
  /** The events of one type. */
  of(type: AuditEventType): Record<string, unknown>[];
}

export function memoryAudit(base: Fields = {}): MemoryAudit {
  const events: Record<string, unknown>[] = [];
  return {
    events,
    emit(type, fields) {
      const e = { type, ...base, ...fields };
      validateEvent(e);
      events.push(e);
    },
    of: (type) => events.filter((e) => e.type === type),
  };
}
