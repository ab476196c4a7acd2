/**
 * The files of an audit log directory (docs/audit.md, "Files"): the active file `audit.jsonl`,
 * and rotated ones `audit-<first seq, 12 digits>.jsonl`, which together hold one chain. Readers
 * order files by the seq of their first line, falling back to the seq in the name when the first
 * line does not parse (a file holding only a torn line).
 *
 * A file named like a log file is opened only as a regular file (openLogFile): a FIFO, a device
 * or a directory in its place, or a symlink to one, is `audit_not_regular_file` at once, never
 * waited on or read (a copied log directory may hold anything).
 */
import { closeSync, constants, existsSync, fstatSync, openSync, readdirSync, readSync } from "node:fs";
import { join } from "node:path";
import { quote, TidegateError } from "../../errors.ts";

export class AuditFileError extends TidegateError<"audit_not_regular_file"> {}

/**
 * A log file open for reading: opened with O_NONBLOCK (a FIFO never blocks the open), and closed
 * again and refused unless it is a regular file. Other errors are the file system's (`code`).
 */
export function openLogFile(path: string): number {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  let regular = false;
  try {
    regular = fstatSync(fd).isFile();
  } finally {
    if (!regular) closeSync(fd);
  }
  if (!regular) throw new AuditFileError("audit_not_regular_file", `audit: ${quote(path)} is named like a log file but is not a regular file (a FIFO, a device, a directory): refused, not read`);
  return fd;
}

export const ACTIVE_FILE = "audit.jsonl";
/** In the state directory: the latest checkpoint's seq and line hash (`audit verify --state`). */
export const AUDIT_STATE_FILE = "audit-checkpoint.json";
/** In the state directory: the last seq the agent's continuous export delivered. */
export const AUDIT_EXPORT_CURSOR_FILE = "audit-export.json";
/** A rotated file's name; the capture is its first seq. */
export const ROTATED_FILE = /^audit-(\d{12})\.jsonl$/;


export function rotatedName(firstSeq: number): string {
  return `audit-${String(firstSeq).padStart(12, "0")}.jsonl`;
}

export interface LogFile {
  readonly name: string;
  readonly path: string;
  /** The seq of its first line (or of its name), null when neither tells. */
  readonly firstSeq: number | null;
}

/** The seq of the first line of `path`, or null. */
function firstSeqOf(path: string): number | null {
  const head = readRange(path, 0, 4096);
  const m = /^\{"seq":(\d+),/.exec(head);
  return m === null ? null : Number(m[1]);
}

/** The log files of `dir` in chain order: rotated ones by first seq, then the active file. */
export function listLogFiles(dir: string): LogFile[] {
  if (!existsSync(dir)) return [];
  const files: LogFile[] = [];
  for (const name of readdirSync(dir)) {
    const m = ROTATED_FILE.exec(name);
    if (m === null && name !== ACTIVE_FILE) continue;
    const path = join(dir, name);
    const seq = firstSeqOf(path) ?? (m !== null ? Number(m[1]) : null);
    files.push({ name, path, firstSeq: seq });
  }
  return files.sort((a, b) => {
    if (a.name === ACTIVE_FILE) return 1;
    if (b.name === ACTIVE_FILE) return -1;
    return (a.firstSeq ?? 0) - (b.firstSeq ?? 0);
  });
}

function readRange(path: string, start: number, length: number): string {
  const fd = openLogFile(path);
  try {
    const buf = Buffer.alloc(length);
    const n = readSync(fd, buf, 0, length, start);
    return buf.subarray(0, n).toString("utf8");
  } finally {
    closeSync(fd);
  }
}

export interface FileTail {
  readonly size: number;
  /** Complete lines (without "\n"), oldest first, back to and including the last checkpoint if
   * the file holds one; else every line of the file. */
  readonly lines: readonly string[];
  readonly sawCheckpoint: boolean;
  /** Bytes after the last "\n" (a line cut short by a crash or power loss). */
  readonly tornBytes: number;
}

const CHECKPOINT = /^\{"seq":\d+,"time":"[^"]*","type":"checkpoint",/;

/**
 * Reads `path` from its end, in blocks, back to the last checkpoint line: what the writer needs
 * to go on with the chain (the last line's seq and hash, and how many lines since the checkpoint).
 */
export function readTail(path: string): FileTail {
  const fd = openLogFile(path);
  try {
    const size = fstatSync(fd).size;
    const BLOCK = 256 * 1024;
    let pos = size;
    let rest = Buffer.alloc(0);
    let lines: string[] = [];
    let tornBytes = -1;
    let sawCheckpoint = false;
    while (pos > 0 && !sawCheckpoint) {
      // A block as long as the line held so far: a long (torn) line costs its length, not its square.
      const start = Math.max(0, pos - Math.max(BLOCK, rest.length));
      const buf = Buffer.alloc(pos - start);
      readSync(fd, buf, 0, buf.length, start);
      pos = start;
      rest = Buffer.concat([buf, rest]);
      if (tornBytes < 0) {
        const nl = rest.lastIndexOf(0x0a);
        if (nl < 0 && pos > 0) continue;
        tornBytes = rest.length - (nl + 1);
        rest = rest.subarray(0, nl + 1);
      }
      // Every complete line in `rest` except a first one that may continue before `pos`.
      let cut = pos > 0 ? rest.indexOf(0x0a) + 1 : 0;
      if (cut === 0 && pos > 0) continue;
      const found = rest.subarray(cut).toString("utf8").split("\n").filter((l) => l.length > 0);
      rest = rest.subarray(0, cut);
      lines = found.concat(lines);
      const at = lines.findLastIndex((l) => CHECKPOINT.test(l));
      if (at >= 0) {
        lines = lines.slice(at);
        sawCheckpoint = true;
      }
    }
    return { size, lines, sawCheckpoint, tornBytes: Math.max(0, tornBytes) };
  } finally {
    closeSync(fd);
  }
}
