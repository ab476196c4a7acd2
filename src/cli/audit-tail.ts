/**
 * `tidegate audit tail` (docs/audit.md, "Commands"): the last events of an audit directory, and
 * with `follow` each new one as it is written, across rotations, until the signal aborts.
 *
 * Guaranteed:
 * - events come oldest first, each at most once: a followed line is printed only when its seq is
 *   above every seq seen before (so a file seen twice, as the active file and again under its
 *   rotated name, prints nothing twice);
 * - a line is read only once it is complete: a torn last line (a write in progress, or left by a
 *   crash) is skipped until its "\n" arrives, and forever when it never does;
 * - rotation (the active file renamed to `audit-<seq>.jsonl`, a new `audit.jsonl` created) is
 *   followed: the renamed file is read to its end, then any file rotated meanwhile, then the new
 *   active file. A new active file whose first seq is not above the last one seen means the log
 *   was started again from scratch: a warning, and the new chain is followed.
 * - lines that are not audit events (not JSON of an object with a seq) are skipped and counted
 *   in a warning on stderr; `audit verify` says what is wrong with them.
 * Detection is by polling every `pollMs` (default 200 ms): no inotify needed, any filesystem.
 */
import { closeSync, fstatSync, statSync } from "node:fs";
import { join } from "node:path";
import { ACTIVE_FILE, openLogFile } from "../audit/sink/files.ts";
import type { Output } from "./command.ts";
import { completeEnd, dirSources, linesBackward, linesFrom, refuseNonDir, requireDir, seqOfLine } from "./audit-files.ts";
import { absentFields, matches, noteFields, parseEvent, showEvent, showRaw, type AuditObject, type Filter } from "./audit-view.ts";
import { sleep } from "../runtime/sleep.ts";

export interface TailOptions {
  readonly dir: string;
  /** How many of the last matching events to print first (0: none). */
  readonly count: number;
  readonly json: boolean;
  readonly filters: readonly Filter[];
  readonly follow: boolean;
  readonly pollMs?: number;
  /** Ends following. */
  readonly signal?: AbortSignal;
  /** Called after each poll's output (tests wait on it instead of sleeping). */
  readonly onPoll?: () => void;
}

function openOrNull(path: string): number | null {
  try {
    return openLogFile(path);
  } catch (e) {
    if ((e as { code?: string }).code === "ENOENT") return null;
    throw e;
  }
}

function inoOf(path: string): number | null {
  try {
    return statSync(path).ino;
  } catch {
    return null;
  }
}

class Tail {
  readonly active: string;
  fd: number | null = null;
  ino = -1;
  offset = 0;
  /** The first line of a newly opened active file is still to come. */
  fresh = false;
  lastSeen: number | null = null;
  skipped = 0;
  /** Events the first scan read, and the filters whose field one of them had. */
  private read = 0;
  private readonly fieldsSeen = new Set<Filter>();
  out: string[] = [];

  constructor(
    readonly o: TailOptions,
    readonly io: Output,
  ) {
    this.active = join(o.dir, ACTIVE_FILE);
  }

  show(line: string, e: AuditObject): string {
    return this.o.json ? showRaw(line) : showEvent(e);
  }

  /** The last `count` matching events, oldest first; sets lastSeen and where following starts. */
  initial(): string[] {
    const picked: string[] = [];
    const take = (line: string): boolean => {
      const e = parseEvent(line);
      if (e === null) {
        this.skipped++;
        return false;
      }
      this.lastSeen ??= e.seq as number;
      this.read++;
      noteFields(e, this.o.filters, this.fieldsSeen);
      if (picked.length < this.o.count && matches(e, this.o.filters)) picked.push(this.show(line, e));
      return picked.length >= this.o.count && this.lastSeen !== null;
    };
    this.fd = openOrNull(this.active);
    let done = false;
    if (this.fd !== null) {
      const st = fstatSync(this.fd);
      this.ino = st.ino;
      this.offset = completeEnd(this.fd, st.size);
      for (const line of linesBackward(this.fd, this.offset)) if ((done = take(line))) break;
    }
    const rotated = dirSources(this.o.dir).filter((f) => f.path !== this.active).reverse();
    for (const f of rotated) {
      if (done) break;
      if (inoOf(f.path) === this.ino) continue;
      const fd = openOrNull(f.path);
      if (fd === null) continue;
      try {
        for (const line of linesBackward(fd)) if ((done = take(line))) break;
      } finally {
        closeSync(fd);
      }
    }
    if (picked.length === 0 && this.read > 0 && this.o.count > 0) {
      const absent = absentFields(this.o.filters, this.fieldsSeen);
      if (absent.length > 0) this.io.err(`note: none of the ${this.read} events read has ${absent.map((f) => `a field ${f}`).join(" or ")} (--where names a field by its dotted path, as the output shows it)\n`);
    }
    return picked.reverse();
  }

  /** A line read while following: printed when new and matching. */
  follow(line: string): void {
    const seq = seqOfLine(line);
    if (this.fresh && seq !== null) {
      this.fresh = false;
      if (this.lastSeen !== null && seq <= this.lastSeen) {
        this.io.err(`warning: ${this.active} starts again at seq ${seq} (after seq ${this.lastSeen}): the log was started anew\n`);
        this.lastSeen = seq - 1;
      }
    }
    if (seq !== null && this.lastSeen !== null && seq <= this.lastSeen) return;
    const e = parseEvent(line);
    if (e === null) {
      this.skipped++;
      return;
    }
    this.lastSeen = e.seq as number;
    if (matches(e, this.o.filters)) this.out.push(this.show(line, e));
  }

  readFd(): void {
    if (this.fd === null) return;
    this.offset = linesFrom(this.fd, this.offset, (l) => this.follow(l));
  }

  poll(): void {
    this.readFd();
    const ino = inoOf(this.active);
    if (ino === null || ino === this.ino) return; // not there (yet, or mid-rotation), or the same file
    // Rotated (or created): the old file is complete now that a new one took its name.
    this.readFd();
    if (this.fd !== null) closeSync(this.fd);
    this.fd = openOrNull(this.active);
    if (this.fd === null) return;
    this.ino = fstatSync(this.fd).ino;
    this.offset = 0;
    for (const f of dirSources(this.o.dir)) {
      if (f.path === this.active || f.firstSeq === null || (this.lastSeen !== null && f.firstSeq <= this.lastSeen)) continue;
      if (inoOf(f.path) === this.ino) continue;
      const fd = openOrNull(f.path);
      if (fd === null) continue;
      try {
        linesFrom(fd, 0, (l) => this.follow(l));
      } finally {
        closeSync(fd);
      }
    }
    this.fresh = true;
    this.readFd();
  }

  flush(): void {
    if (this.out.length > 0) this.io.out(this.out.join("\n") + "\n");
    this.out = [];
    if (this.skipped > 0) this.io.err(`warning: skipped ${this.skipped} ${this.skipped === 1 ? "line that is not an audit event" : "lines that are not audit events"} (audit verify says what is wrong)\n`);
    this.skipped = 0;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/** See the header. Without `follow`, a directory that does not exist is `audit_no_log`; a file is a usage error. */
export async function tailAudit(o: TailOptions, io: Output): Promise<void> {
  if (!o.follow) requireDir(o.dir, "tail");
  else refuseNonDir(o.dir, "tail");
  const t = new Tail(o, io);
  try {
    t.out = t.initial();
    t.flush();
    if (!o.follow) return;
    while (!o.signal?.aborted) {
      await sleep(o.pollMs ?? 200, o.signal);
      t.poll();
      t.flush();
      o.onPoll?.();
    }
  } finally {
    t.close();
  }
}
