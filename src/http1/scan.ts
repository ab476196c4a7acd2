/**
 * Finds where a head (start line, header lines, empty line) or a trailer section ends, across
 * any number of pushes, looking at each byte once. It checks what a line's end tells: every LF
 * follows a CR (RFC 9112 section 2.2: a bare LF is refused), the start line's length, the head's
 * length and the number of lines. What the lines hold is checked later (fields.ts,
 * start-line.ts), once the head is whole: a CR inside a line is refused there.
 *
 * Where it is split never changes the outcome: the limits are checked on every prefix, so a head
 * over a limit fails with the same code whether it comes in one push or byte by byte.
 */
import { CR, LF } from "./bytes.ts";
import { fail, type Http1Limits } from "./errors.ts";

export class HeadScanner {
  /** Bytes of the head seen so far, from its first byte (after skipped empty lines). */
  length = 0;
  /** Non-empty lines completed; the start line is line 0 when there is one. */
  count = 0;
  /** Head offset of the CR ending each completed line. */
  readonly ends: Int32Array;
  /** After a scan: the chunk index where the head starts when empty lines were skipped in it, else -1. */
  skippedTo = -1;
  #lineStart = 0;
  #lastCr = false;
  readonly #limits: Http1Limits;
  readonly #startLine: boolean;

  /**
   * `startLine`: the first line is a request or status line (maxStartLineBytes applies); else a
   * trailer section, which may be just the empty line.
   */
  constructor(limits: Http1Limits, startLine: boolean) {
    this.#limits = limits;
    this.#startLine = startLine;
    this.ends = new Int32Array(limits.maxHeaders + 1);
  }

  reset(): void {
    this.length = 0;
    this.count = 0;
    this.#lineStart = 0;
    this.#lastCr = false;
    this.skippedTo = -1;
  }

  /** Head offset where line `k` starts (0 for the first). */
  lineStart(k: number): number {
    return k === 0 ? 0 : (this.ends[k - 1] ?? 0) + 2;
  }

  /**
   * Scans `b` from `from` on; `skipEmpty` skips empty lines before a start line (RFC 9112
   * section 2.2 lets a server ignore them). Returns the index just past the LF of the empty line
   * that ends the head, or -1 when `b` ends first. Throws Http1Error.
   */
  scan(b: Uint8Array, from: number, skipEmpty: boolean): number {
    const limits = this.#limits;
    this.skippedTo = -1;
    let base = this.length - from;
    let i = from;
    for (;;) {
      const lf = b.indexOf(LF, i);
      if (lf < 0) {
        const end = base + b.length;
        if (b.length > from) this.#lastCr = b[b.length - 1] === CR;
        this.#checkSizes(end - (this.#lastCr ? 1 : 0), end);
        this.length = end;
        return -1;
      }
      const at = base + lf;
      const cr = lf > from ? b[lf - 1] === CR : this.#lastCr;
      this.#checkSizes(at - (cr ? 1 : 0), at + 1);
      if (!cr) throw fail("http1_bad_line_ending", `an LF without a CR before it, at byte ${at} of the ${this.#what()}`);
      this.#lastCr = false;
      if (at - 1 === this.#lineStart) {
        if (this.count > 0 || !this.#startLine) {
          this.length = at + 1;
          return lf + 1;
        }
        if (!skipEmpty) throw fail("http1_bad_start_line", "an empty line where the status line belongs");
        base = -(lf + 1);
        this.#lineStart = 0;
        this.skippedTo = lf + 1;
      } else {
        const headers = this.#startLine ? this.count : this.count + 1;
        if (headers > limits.maxHeaders) throw fail("http1_too_many_headers", `more than ${limits.maxHeaders} ${this.#startLine ? "header" : "trailer"} lines`);
        this.ends[this.count++] = at - 1;
        this.#lineStart = at + 1;
      }
      i = lf + 1;
    }
  }

  /** `lineEnd`: where the current line's content ends so far; `headEnd`: the head's length so far. */
  #checkSizes(lineEnd: number, headEnd: number): void {
    const limits = this.#limits;
    if (this.#startLine && this.count === 0 && lineEnd - this.#lineStart > limits.maxStartLineBytes) {
      throw fail("http1_start_line_too_long", `a start line longer than ${limits.maxStartLineBytes} bytes`);
    }
    if (headEnd > limits.maxHeadBytes) throw fail("http1_head_too_large", `a ${this.#what()} longer than ${limits.maxHeadBytes} bytes`);
  }

  #what(): string {
    return this.#startLine ? "head" : "trailer section";
  }
}
