/**
 * The events an agent wrote to its audit log, read from its audit folder as `tidegate audit tail
 * --json` would: every file in chain order, a torn last line (still being written) left out.
 */
import { readFileSync } from "node:fs";
import { listLogFiles } from "../../src/audit/sink/files.ts";

/** An audit event: `type`, `seq`, and its fields (`src` and `dst` are objects on connection events). */
export type AuditLine = { type: string; seq: number; [k: string]: unknown };

export function readAudit(dir: string): AuditLine[] {
  const out: AuditLine[] = [];
  for (const f of listLogFiles(dir)) {
    const text = readFileSync(f.path, "utf8");
    const complete = text.slice(0, text.lastIndexOf("\n") + 1);
    for (const line of complete.split("\n")) if (line.length > 0) out.push(JSON.parse(line) as AuditLine);
  }
  return out;
}

/** `src` or `dst` of a connection event, for predicates. */
export const srcOf = (l: AuditLine) => (l.src ?? {}) as { spiffe_id?: string | null; pid?: number | null; uid?: number | null; workload?: string | null; peer?: string | null };
export const dstOf = (l: AuditLine) => (l.dst ?? {}) as { addr?: string; port?: number; name?: string | null };
