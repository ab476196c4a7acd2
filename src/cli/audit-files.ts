/**
 * How the `audit` verbs find and read log files (docs/audit.md, "Files" and "Commands"): the
 * files of an audit directory in chain order (src/audit/sink/files.ts), files named on the command
 * line sorted the same way, and the complete lines of a file read backwards from its end.
 *
 * Guaranteed: a line is only ever handed out whole; the bytes after a file's last "\n" (a line
 * being written, or torn by a crash) are never returned. Nothing here writes.
 */
import { closeSync, existsSync, fstatSync, readSync, statSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { quote, TidegateError } from "../errors.ts";
import { ACTIVE_FILE, listLogFiles, openLogFile, ROTATED_FILE as ROTATED } from "../audit/sink/files.ts";
import { UsageError } from "./usage-error.ts";

export const AUDIT_CLI_ERROR_CODES = [
  /** The audit directory does not exist. */
  "audit_no_log",
] as const;

export type AuditCliErrorCode = (typeof AUDIT_CLI_ERROR_CODES)[number];

export class AuditCliError extends TidegateError<AuditCliErrorCode> {}

/** One log file: `name` is what reports show (the path as found or given). */
export interface LogSource {
  readonly name: string;
  readonly path: string;
  readonly firstSeq: number | null;
}

const FIRST_SEQ = /^\{"seq":(\d+),/;

/** The seq of the first line of `path` (read from its first 4 KiB), or null. */
export function firstSeqOf(path: string): number | null {
  const fd = openLogFile(path);
  try {
    const buf = Buffer.alloc(4096);
    const n = readSync(fd, buf, 0, buf.length, 0);
    const m = FIRST_SEQ.exec(buf.subarray(0, n).toString("latin1"));
    return m === null ? null : Number(m[1]);
  } finally {
    closeSync(fd);
  }
}

/** The log files of `dir` in chain order, named by their path; [] when `dir` does not exist. */
export function dirSources(dir: string): LogSource[] {
  return listLogFiles(dir).map((f) => ({ name: f.path, path: f.path, firstSeq: f.firstSeq }));
}

/**
 * Files named on the command line, sorted by the seq of their first line (when that does not
 * parse: by the seq in a rotated file's name, else after the others, in the order given).
 * A name that is not a readable regular file is a usage error.
 */
export function explicitSources(paths: readonly string[]): LogSource[] {
  const found = paths.map((p, i) => {
    let st;
    try {
      st = statSync(p);
    } catch (e) {
      const code = (e as { code?: string }).code;
      throw new UsageError(`cannot read ${quote(p)}: ${code === "ENOENT" ? "no such file" : (code ?? "unreadable")}`);
    }
    if (!st.isFile()) throw new UsageError(`${quote(p)} is not a regular file`);
    const named = ROTATED.exec(basename(p));
    const seq = firstSeqOf(p) ?? (named !== null ? Number(named[1]) : null);
    return { source: { name: p, path: p, firstSeq: seq }, i };
  });
  const key = (s: LogSource) => s.firstSeq ?? Number.MAX_SAFE_INTEGER;
  return found.sort((a, b) => key(a.source) - key(b.source) || a.i - b.i).map((f) => f.source);
}

/** True when every path is a log file directly inside `dir` (the files of that audit directory). */
export function allInDir(paths: readonly string[], dir: string): boolean {
  const d = resolve(dir);
  return paths.every((p) => resolve(p) === join(d, basename(p)) && (basename(p) === ACTIVE_FILE || ROTATED.test(basename(p))));
}

/** Throws `audit_no_log` unless `dir` exists; see refuseNonDir. */
export function requireDir(dir: string, verb: string): void {
  if (!existsSync(dir)) {
    throw new AuditCliError("audit_no_log", `audit: there is no audit log in ${quote(dir)}: give --audit-dir DIR or --instance NAME${verb === "tail" ? ", or --dir DIR" : ", or FILES"}`);
  }
  refuseNonDir(dir, verb);
}

/** A usage error when `dir` exists but is not a directory (a file given as --audit-dir or --dir). */
export function refuseNonDir(dir: string, verb: string): void {
  let st;
  try {
    st = statSync(dir);
  } catch {
    return; // missing: requireDir's audit_no_log, or waited for by tail -f
  }
  if (!st.isDirectory()) {
    throw new UsageError(`${quote(dir)} is not a directory: give the audit log's folder (${verb === "tail" ? "--audit-dir DIR, --instance NAME or --dir DIR)" : "--audit-dir DIR or --instance NAME), or log files as FILES"}`);
  }
}

const BLOCK = 256 * 1024;

/**
 * The complete lines of the open file `fd` before byte `end`, newest first, without their "\n";
 * empty lines are skipped. Bytes after the last "\n" before `end` are not a complete line and
 * are not returned. Reads in blocks from the end, so the last lines of a large file cost little;
 * a line longer than a block is read in blocks as long as what is held of it, so it costs time in
 * proportion to its length (a fixed block made a 64 MiB line take 3 s, copied over and over).
 */
export function* linesBackward(fd: number, end: number = fstatSync(fd).size): Generator<string> {
  let pos = end;
  let rest: Buffer = Buffer.alloc(0);
  let sawNewline = false;
  while (pos > 0) {
    const start = Math.max(0, pos - Math.max(BLOCK, rest.length));
    const buf = Buffer.alloc(pos - start);
    const n = readSync(fd, buf, 0, buf.length, start);
    if (n !== buf.length) break; // the file shrank under us: stop at what is certain
    pos = start;
    rest = rest.length === 0 ? buf : Buffer.concat([buf, rest]);
    if (!sawNewline) {
      const nl = rest.lastIndexOf(0x0a);
      if (nl < 0) continue;
      rest = rest.subarray(0, nl);
      sawNewline = true;
    }
    for (let nl = rest.lastIndexOf(0x0a); nl >= 0; nl = rest.lastIndexOf(0x0a)) {
      if (nl + 1 < rest.length) yield rest.subarray(nl + 1).toString("utf8");
      rest = rest.subarray(0, nl);
    }
  }
  if (sawNewline && rest.length > 0) yield rest.toString("utf8");
}

/**
 * Hands each complete line of `fd` from byte `offset` on to `onLine`, in order, reading 1 MiB at a
 * time; returns the offset just after the last "\n" read (a line still being written is read
 * again, whole, next time).
 */
export function linesFrom(fd: number, offset: number, onLine: (line: string) => void): number {
  let chunk = 1024 * 1024;
  for (;;) {
    const size = fstatSync(fd).size;
    if (size <= offset) return offset;
    const buf = Buffer.alloc(Math.min(chunk, size - offset));
    const n = readSync(fd, buf, 0, buf.length, offset);
    const nl = buf.subarray(0, n).lastIndexOf(0x0a);
    if (nl < 0) {
      if (n < chunk) return offset;
      chunk *= 2; // one line longer than the chunk: read more of it at once
      continue;
    }
    for (const line of buf.subarray(0, nl).toString("utf8").split("\n")) if (line.length > 0) onLine(line);
    offset += nl + 1;
  }
}

/** The offset just after the last "\n" before byte `end` of `fd` (0 when there is none). */
export function completeEnd(fd: number, end: number): number {
  let pos = end;
  while (pos > 0) {
    const start = Math.max(0, pos - BLOCK);
    const buf = Buffer.alloc(pos - start);
    const n = readSync(fd, buf, 0, buf.length, start);
    const nl = buf.subarray(0, n).lastIndexOf(0x0a);
    if (nl >= 0) return start + nl + 1;
    pos = start;
  }
  return 0;
}

/** The seq a line starts with, without parsing the rest; null for a line that is not ours. */
export function seqOfLine(line: string): number | null {
  const m = FIRST_SEQ.exec(line);
  return m === null ? null : Number(m[1]);
}
