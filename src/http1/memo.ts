/**
 * What a parser remembers of the previous head on its connection: its start line and each header
 * line, as bytes and as parsed. Requests on a keep-alive connection mostly repeat the lines of the
 * one before; a line whose bytes are the same as the remembered line at the same position is not
 * parsed again. Parsing is a function of a line's bytes (and the version), so reuse gives what
 * parsing would. A memo belongs to one parser (one connection) and lives as long as it.
 */
import type { Header } from "./headers.ts";
import type { Fields } from "./fields.ts";
import type { HttpVersion } from "./types.ts";

const EMPTY = new Uint8Array(0);

export function sameBytes(a: Uint8Array, ai: number, b: Uint8Array, bi: number, n: number): boolean {
  for (let k = 0; k < n; k++) if (a[ai + k] !== b[bi + k]) return false;
  return true;
}

/**
 * One remembered line. The memos keep references into the head they were filled from: the
 * parser gives them heads it copied, never a caller's buffer.
 */
export class LineMemo<T> {
  #bytes: Uint8Array = EMPTY;
  #from = 0;
  #length = -1;
  #value: T | null = null;

  /** The value remembered for the line `b[from, to)`, or null. */
  get(b: Uint8Array, from: number, to: number): T | null {
    return this.#value !== null && this.#length === to - from && sameBytes(b, from, this.#bytes, this.#from, this.#length) ? this.#value : null;
  }

  set(b: Uint8Array, from: number, to: number, value: T): void {
    this.#bytes = b;
    this.#from = from;
    this.#length = to - from;
    this.#value = value;
  }
}

/** The previous head's header section: its bytes, each line's place in them, each parsed field. */
export class FieldsMemo {
  /** The head the lines are in. */
  bytes: Uint8Array = EMPTY;
  /** Offset in `bytes` where each line starts, and its length (CRLF not counted). */
  starts: number[] = [];
  lengths: number[] = [];
  headers: Header[] = [];
  version: HttpVersion | null = null;
  /** The whole result, reusable when every line and the version are the same. */
  fields: Fields | null = null;

  /** The remembered field of line `j` when `b[from, to)` is that line's bytes. */
  line(j: number, b: Uint8Array, from: number, to: number): Header | null {
    const n = to - from;
    if (j >= this.headers.length || this.lengths[j] !== n) return null;
    return sameBytes(b, from, this.bytes, this.starts[j] ?? 0, n) ? (this.headers[j] ?? null) : null;
  }
}

/** A parser's memory of its previous head: the start line (`L`, parsed) and the fields. */
export class HeadMemo<L> {
  readonly line = new LineMemo<L>();
  readonly fields = new FieldsMemo();
}
