/**
 * The exporter's source: the events of an audit log directory, read from its files
 * (docs/audit.md, "Files"): the active `audit.jsonl` and rotated `audit-<12-digit seq>.jsonl`.
 *
 * Guarantees:
 * - Files are put in chain order by the seq of their first complete line, not by name; a file
 *   without a complete line (empty, or holding only a torn line) gives nothing.
 * - Only complete lines are read: the bytes after a file's last "\n" (a line being written, or
 *   torn by a crash) are left for a later read, or for good when the writer moved on.
 * - A read resumes at the byte where the previous one stopped when it continues from there (no
 *   rescan of a large active file on every poll). A file is opened once per read and its first
 *   line checked again through that handle, so a rotation between listing and reading (the active
 *   file renamed, a new one begun) is seen and the read starts over with a fresh listing.
 * Refused (`export_bad_source`): a line that is not UTF-8, not a JSON object, without a positive
 * integer seq or string time and type, or longer than MAX_LINE_BYTES; two files starting at the
 * same seq. The events are not checked for continuity or hashes here: the exporter refuses a gap,
 * `tidegate audit verify` checks the chain.
 */
import { open, readdir, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import type { EventSource, ParsedEvent } from "./exporter.ts";
import { ExportError } from "./errors.ts";
import { ACTIVE_FILE, readTail, ROTATED_FILE as ROTATED } from "../sink/files.ts";

export { ACTIVE_FILE };
export const MAX_LINE_BYTES = 16 * 1024 * 1024;
const CHUNK = 256 * 1024;
const NL = 0x0a;
/** Where a read may resume: in the file starting at `firstSeq`, byte `offset` begins `nextSeq`. */
interface Position {
  readonly firstSeq: number;
  readonly offset: number;
  readonly nextSeq: number;
}
interface Listed {
  readonly name: string;
  readonly firstSeq: number;
}
class Moved extends Error {}

export class FileSource implements EventSource {
  readonly #dir: string;
  /** First seqs of rotated files, which never change. */
  readonly #rotatedFirst = new Map<string, number>();
  #positions: Position[] = [];

  constructor(dir: string) {
    this.#dir = dir;
  }

  /** The last complete line's seq in the newest file that holds one (null: no line at all). */
  async lastSeq(): Promise<number | null> {
    const files = await this.#list();
    for (let i = files.length - 1; i >= 0; i--) {
      let tail;
      try {
        tail = readTail(join(this.#dir, files[i]!.name));
      } catch {
        continue;
      }
      const last = tail.lines.at(-1);
      const m = last === undefined ? null : /^\{"seq":(\d+),/.exec(last);
      if (m !== null) return Number(m[1]);
    }
    return null;
  }

  async read(afterSeq: number, max: number): Promise<ParsedEvent[]> {
    for (let tries = 1; ; tries++) {
      try {
        return await this.#readOnce(afterSeq, max);
      } catch (e) {
        if (!(e instanceof Moved) || tries === 3) {
          if (e instanceof Moved) throw new ExportError("export_bad_source", `audit: export: the files of ${this.#dir} kept changing while read (${e.message})`);
          throw e;
        }
      }
    }
  }

  async #readOnce(afterSeq: number, max: number): Promise<ParsedEvent[]> {
    const files = await this.#list();
    let i = files.findLastIndex((f) => f.firstSeq <= afterSeq + 1);
    if (i < 0) i = 0;
    const out: ParsedEvent[] = [];
    for (; i < files.length && out.length < max; i++) {
      const f = files[i]!;
      const after = out.length > 0 ? out[out.length - 1]!.seq : afterSeq;
      const from = this.#positions.find((p) => p.firstSeq === f.firstSeq && p.nextSeq === after + 1)?.offset ?? 0;
      const fh = await openOrNull(join(this.#dir, f.name));
      if (fh === null) throw new Moved(`${f.name} is gone`);
      try {
        if ((await firstSeqOf(fh, f.name)) !== f.firstSeq) throw new Moved(`${f.name} begins at another seq`);
        const r = await readEvents(fh, f.name, from, after, max - out.length);
        out.push(...r.events);
        this.#remember({ firstSeq: f.firstSeq, offset: r.end, nextSeq: (out.length > 0 ? out[out.length - 1]!.seq : after) + 1 });
      } finally {
        await fh.close();
      }
    }
    return out;
  }

  #remember(p: Position): void {
    this.#positions = [p, ...this.#positions.filter((q) => q.firstSeq !== p.firstSeq || q.nextSeq !== p.nextSeq)].slice(0, 8);
  }

  async #list(): Promise<Listed[]> {
    let names: string[];
    try {
      names = await readdir(this.#dir);
    } catch (e) {
      if ((e as { code?: string }).code === "ENOENT") return [];
      throw e;
    }
    const files: Listed[] = [];
    for (const name of names) {
      if (name !== ACTIVE_FILE && !ROTATED.test(name)) continue;
      let first = this.#rotatedFirst.get(name) ?? null;
      if (first === null) {
        const fh = await openOrNull(join(this.#dir, name));
        if (fh === null) continue;
        try {
          first = await firstSeqOf(fh, name);
        } finally {
          await fh.close();
        }
        if (first !== null && name !== ACTIVE_FILE) this.#rotatedFirst.set(name, first);
      }
      if (first !== null) files.push({ name, firstSeq: first });
    }
    files.sort((a, b) => a.firstSeq - b.firstSeq);
    for (let i = 1; i < files.length; i++) {
      if (files[i]!.firstSeq === files[i - 1]!.firstSeq) {
        const pair = `${files[i - 1]!.name} and ${files[i]!.name}`;
        if (files[i]!.name === ACTIVE_FILE || files[i - 1]!.name === ACTIVE_FILE) throw new Moved(`${pair} begin at the same seq`);
        throw new ExportError("export_bad_source", `audit: export: ${pair} in ${this.#dir} both begin at seq ${files[i]!.firstSeq}`);
      }
    }
    return files;
  }
}

async function openOrNull(path: string): Promise<FileHandle | null> {
  try {
    return await open(path, "r");
  } catch (e) {
    if ((e as { code?: string }).code === "ENOENT") return null;
    throw e;
  }
}

async function firstSeqOf(fh: FileHandle, name: string): Promise<number | null> {
  const r = await readEvents(fh, name, 0, 0, 1, 4096);
  return r.events[0]?.seq ?? null;
}

const decoder = new TextDecoder("utf-8", { fatal: true });
const SEQ_PREFIX = /^\{"seq":([1-9][0-9]{0,15}),/;

/**
 * Up to `max` events with seq above `afterSeq` from the complete lines at and after byte `from`,
 * and the byte just after the last line looked at.
 */
async function readEvents(fh: FileHandle, name: string, from: number, afterSeq: number, max: number, chunkBytes = CHUNK): Promise<{ events: ParsedEvent[]; end: number }> {
  const events: ParsedEvent[] = [];
  let base = from;
  let carry = new Uint8Array(0);
  for (;;) {
    const chunk = new Uint8Array(chunkBytes);
    const { bytesRead } = await fh.read(chunk, 0, chunkBytes, base + carry.byteLength);
    if (bytesRead === 0) return { events, end: base };
    const data = new Uint8Array(carry.byteLength + bytesRead);
    data.set(carry);
    data.set(chunk.subarray(0, bytesRead), carry.byteLength);
    let start = 0;
    for (let nl = data.indexOf(NL); nl >= 0; nl = data.indexOf(NL, start)) {
      const bytes = data.subarray(start, nl);
      const at = base + start;
      start = nl + 1;
      const e = parseLine(bytes, name, at, afterSeq);
      if (e === null) continue;
      events.push(e);
      if (events.length === max) return { events, end: base + start };
    }
    base += start;
    carry = data.slice(start);
    if (carry.byteLength > MAX_LINE_BYTES) throw new ExportError("export_bad_source", `audit: export: ${name} has a line longer than ${MAX_LINE_BYTES} bytes at byte ${base}`);
  }
}

/** The event on one line, or null when its seq is not above `afterSeq`. */
function parseLine(bytes: Uint8Array, name: string, at: number, afterSeq: number): ParsedEvent | null {
  const bad = (why: string) => new ExportError("export_bad_source", `audit: export: ${name} line at byte ${at}: ${why}`);
  let line: string;
  try {
    line = decoder.decode(bytes);
  } catch {
    throw bad("not UTF-8");
  }
  const quick = SEQ_PREFIX.exec(line);
  if (quick !== null && Number(quick[1]) <= afterSeq) return null;
  let o: unknown;
  try {
    o = JSON.parse(line);
  } catch {
    throw bad("not JSON");
  }
  if (typeof o !== "object" || o === null || Array.isArray(o)) throw bad("not a JSON object");
  const { seq, time, type, prev: _prev, ...fields } = o as Record<string, unknown>;
  if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 1) throw bad("no positive integer seq");
  if (typeof time !== "string" || typeof type !== "string") throw bad(`seq ${seq} has no string time and type`);
  return seq <= afterSeq ? null : { seq, time, type, fields, line };
}
