/**
 * The chunked transfer coding (RFC 9112 section 7.1), decoded byte by byte across pushes up to the
 * last chunk's line; the trailer section after it is the parser's (scan.ts, fields.ts).
 *
 *   chunk      = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   chunk-size = 1*HEXDIG                  ; at most 16 digits, at most 2^53 - 1
 *   chunk-ext  = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )
 *
 * Refused: a size that is empty, not hex, too long or too large (http1_bad_chunk_size);
 * extensions off that grammar, whitespace after the size not followed by ";"
 * (http1_bad_chunk_ext); extensions longer than maxChunkExtBytes (http1_chunk_ext_too_long);
 * a bare CR or LF in a size line (http1_bad_line_ending); data not followed by CRLF
 * (http1_bad_chunk_terminator). Extensions are checked and dropped.
 */
import { byteName, CR, HEX, HTAB, LF, part, SP, TCHAR } from "./bytes.ts";
import { fail, type Http1Limits } from "./errors.ts";
import type { Http1Event } from "./types.ts";

// States: the size line, the data and its CRLF, then the extension grammar's positions.
const SIZE = 0;
const SIZE_LF = 1;
const DATA = 2;
const DATA_CR = 3;
const DATA_LF = 4;
/** BWS, then ";" */
const PRE_SEMI = 5;
const NAME_START = 6;
const NAME = 7;
/** BWS after a name, then "=" or ";" */
const AFTER_NAME = 8;
const VALUE_START = 9;
const TOKEN = 10;
const QUOTED = 11;
const QUOTED_ESCAPE = 12;
/** Right after a closing quote: CR, ";" or BWS */
const AFTER_QUOTE = 13;

const MAX_DIGITS = 16;

/** qdtext and quoted-pair bytes (RFC 9110 section 5.6.4): HTAB, SP, VCHAR, obs-text. */
function isQuotedText(c: number): boolean {
  return c === HTAB || (c >= SP && c !== 0x7f);
}

export class ChunkedDecoder {
  #s = SIZE;
  #size = 0;
  #digits = 0;
  #ext = 0;
  #remaining = 0;
  /** True once the last chunk's line (size 0) has ended: the trailer section follows. */
  last = false;
  readonly #limits: Http1Limits;

  constructor(limits: Http1Limits) {
    this.#limits = limits;
  }

  reset(): void {
    this.#s = SIZE;
    this.#size = 0;
    this.#digits = 0;
    this.#ext = 0;
    this.last = false;
  }

  /** Decodes `b` from `i` on, pushing body events; returns where it stopped (at `last`, or `b.length`). */
  run<H>(b: Uint8Array, i: number, out: Http1Event<H>[]): number {
    const n = b.length;
    while (i < n) {
      const s = this.#s;
      if (s === DATA) {
        const take = Math.min(this.#remaining, n - i);
        out.push({ kind: "body", bytes: part(b, i, i + take) });
        i += take;
        this.#remaining -= take;
        if (this.#remaining === 0) this.#s = DATA_CR;
        continue;
      }
      const c = b[i++] ?? 0;
      if (s === SIZE) this.#sizeByte(c);
      else if (s === SIZE_LF) {
        if (c !== LF) throw fail("http1_bad_line_ending", "a CR not followed by LF after a chunk size");
        if (this.#size === 0) {
          this.last = true;
          return i;
        }
        this.#remaining = this.#size;
        this.#s = DATA;
      } else if (s === DATA_CR) {
        if (c !== CR) throw fail("http1_bad_chunk_terminator", `${byteName(c)} after chunk data, want CRLF`);
        this.#s = DATA_LF;
      } else if (s === DATA_LF) {
        if (c !== LF) throw fail("http1_bad_chunk_terminator", `${byteName(c)} after chunk data and CR, want LF`);
        this.reset();
      } else this.#extByte(c);
    }
    return i;
  }

  #sizeByte(c: number): void {
    const h = HEX[c] ?? 255;
    if (h !== 255) {
      if (++this.#digits > MAX_DIGITS) throw fail("http1_bad_chunk_size", `a chunk size of more than ${MAX_DIGITS} hex digits`);
      this.#size = this.#size * 16 + h;
      if (this.#size > Number.MAX_SAFE_INTEGER) throw fail("http1_bad_chunk_size", "a chunk size over 2^53 - 1");
      return;
    }
    if (this.#digits === 0) throw fail("http1_bad_chunk_size", `a chunk size starting with ${byteName(c)}, want a hex digit`);
    if (c === CR) this.#s = SIZE_LF;
    else if (c === 0x3b || c === SP || c === HTAB) {
      this.#ext = 1;
      this.#s = c === 0x3b ? NAME_START : PRE_SEMI;
    } else if (c === LF) throw fail("http1_bad_line_ending", "an LF without a CR before it after a chunk size");
    else throw fail("http1_bad_chunk_size", `${byteName(c)} in a chunk size`);
  }

  #extByte(c: number): void {
    const s = this.#s;
    const quoted = s === QUOTED || s === QUOTED_ESCAPE;
    if (c === CR && !quoted && (s === NAME || s === TOKEN || s === AFTER_QUOTE)) {
      this.#s = SIZE_LF;
      return;
    }
    if (c === LF && !quoted) throw fail("http1_bad_line_ending", "an LF without a CR before it in chunk extensions");
    if (++this.#ext > this.#limits.maxChunkExtBytes) {
      throw fail("http1_chunk_ext_too_long", `chunk extensions longer than ${this.#limits.maxChunkExtBytes} bytes`);
    }
    const ws = c === SP || c === HTAB;
    const t = TCHAR[c] === 1;
    let next = -1;
    if (s === PRE_SEMI) next = ws ? s : c === 0x3b ? NAME_START : -1;
    else if (s === NAME_START) next = ws ? s : t ? NAME : -1;
    else if (s === NAME) next = t ? s : ws ? AFTER_NAME : c === 0x3d ? VALUE_START : c === 0x3b ? NAME_START : -1;
    else if (s === AFTER_NAME) next = ws ? s : c === 0x3d ? VALUE_START : c === 0x3b ? NAME_START : -1;
    else if (s === VALUE_START) next = ws ? s : t ? TOKEN : c === 0x22 ? QUOTED : -1;
    else if (s === TOKEN) next = t ? s : ws ? PRE_SEMI : c === 0x3b ? NAME_START : -1;
    else if (s === QUOTED) next = c === 0x22 ? AFTER_QUOTE : c === 0x5c ? QUOTED_ESCAPE : isQuotedText(c) ? s : -1;
    else if (s === QUOTED_ESCAPE) next = isQuotedText(c) ? QUOTED : -1;
    else if (s === AFTER_QUOTE) next = ws ? PRE_SEMI : c === 0x3b ? NAME_START : -1;
    if (next === -1) throw fail("http1_bad_chunk_ext", `${byteName(c)} where the chunk extension grammar does not allow it`);
    this.#s = next;
  }
}
