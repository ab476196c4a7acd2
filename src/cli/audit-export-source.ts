/**
 * The events of audit files named on the command line, for `audit export FILES...`: the files in
 * chain order (./audit-files.ts explicitSources), read as the exporter asks, each read going on
 * from where the previous one stopped (a rescan from the first file only when asked for an
 * earlier seq). Only complete lines are read; a torn last line is not an event.
 *
 * Refused (`export_bad_source`, named by file and line, never by content): a line that is not
 * JSON of an object with a positive integer seq and string time and type. Continuity is the
 * exporter's check (`export_source_gap`); hashes and signatures are `audit verify`'s.
 */
import { closeSync, readSync } from "node:fs";
import { openLogFile } from "../audit/sink/files.ts";
import { ExportError, type EventSource, type ParsedEvent } from "../audit/export/index.ts";
import type { LogSource } from "./audit-files.ts";

interface Position {
  /** Index of the file, the byte offset in it, and the 1-based number of the line there. */
  file: number;
  offset: number;
  line: number;
  /** The seq of the last event handed out (0 before the first). */
  lastSeq: number;
}

function parse(text: string, where: string): ParsedEvent {
  const bad = () => new ExportError("export_bad_source", `audit: export: ${where} is not an audit event`);
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    throw bad();
  }
  if (typeof o !== "object" || o === null || Array.isArray(o)) throw bad();
  const { seq, time, type, prev: _prev, ...fields } = o as Record<string, unknown>;
  if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 1 || typeof time !== "string" || typeof type !== "string") throw bad();
  return { seq, time, type, fields, line: text };
}

const CHUNK = 1024 * 1024;

export class FilesSource implements EventSource {
  readonly #files: readonly LogSource[];
  #at: Position = { file: 0, offset: 0, line: 0, lastSeq: 0 };

  constructor(files: readonly LogSource[]) {
    this.#files = files;
  }

  async read(afterSeq: number, max: number): Promise<ParsedEvent[]> {
    if (afterSeq < this.#at.lastSeq) this.#at = { file: 0, offset: 0, line: 0, lastSeq: 0 };
    const out: ParsedEvent[] = [];
    const at = this.#at;
    while (at.file < this.#files.length && out.length < max) {
      const f = this.#files[at.file]!;
      const fd = openLogFile(f.path);
      try {
        if (this.#readFile(fd, f.name, afterSeq, max, out)) at.file++, (at.offset = 0), (at.line = 0);
      } finally {
        closeSync(fd);
      }
    }
    return out;
  }

  /** Adds events of the current file to `out` until it holds `max`; true when the file is done. */
  #readFile(fd: number, name: string, afterSeq: number, max: number, out: ParsedEvent[]): boolean {
    const at = this.#at;
    let chunk = CHUNK;
    for (;;) {
      const buf = Buffer.alloc(chunk);
      const n = readSync(fd, buf, 0, chunk, at.offset);
      const data = buf.subarray(0, n);
      let start = 0;
      for (let nl = data.indexOf(0x0a); nl >= 0; nl = data.indexOf(0x0a, start)) {
        at.line++;
        const e = parse(data.subarray(start, nl).toString("utf8"), `${name} line ${at.line}`);
        start = nl + 1;
        if (e.seq > afterSeq) {
          out.push(e);
          at.lastSeq = e.seq;
        }
        if (out.length >= max) break;
      }
      at.offset += start;
      if (out.length >= max) return false;
      if (n < chunk) return true; // what is left is at most a torn line: not an event
      if (start === 0) chunk *= 2; // a line longer than the chunk
    }
  }
}
