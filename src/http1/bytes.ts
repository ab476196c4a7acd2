/**
 * Byte classes and byte-to-string conversion shared by the parser and the serializer.
 *
 * Strings are Latin-1 (one char per byte, 0x00..0xFF), so a parsed head serializes back to the
 * same bytes. A head is decoded once, when its first string is needed (HeadText), and its names
 * and values are substrings of that text: one decoder call per head instead of one per string.
 * Nothing is cached across messages: a value may carry a credential.
 */

export const CR = 13;
export const LF = 10;
export const SP = 32;
export const HTAB = 9;
export const COLON = 58;

/** RFC 9110 section 5.6.2 tchar: "!#$%&'*+-.^_`|~", digits, letters. */
export const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TCHAR[c.charCodeAt(0)] = 1;

/** field-vchar / SP / HTAB (RFC 9110 section 5.5): every byte but the controls and DEL. */
export const VALUE_BYTE = new Uint8Array(256);
for (let c = 0; c < 256; c++) VALUE_BYTE[c] = c === HTAB || (c >= SP && c !== 0x7f) ? 1 : 0;

/** Request-target bytes: visible ASCII without "#" (no fragment, RFC 9112 section 3.2). */
export const TARGET_BYTE = new Uint8Array(256);
for (let c = 0x21; c < 0x7f; c++) TARGET_BYTE[c] = c === 0x23 ? 0 : 1;

/** Hex digit values, 255 for a non-hex byte. */
export const HEX = new Uint8Array(256).fill(255);
for (let c = 0; c < 10; c++) HEX[48 + c] = c;
for (let c = 0; c < 6; c++) {
  HEX[65 + c] = 10 + c;
  HEX[97 + c] = 10 + c;
}

/** Where `copyOf` copies whole reads to (grown as needed, never shrunk). */
let staging = new Uint8Array(16 * 1024);

/**
 * A copy of `b[from, to)` (by default all of `b`), made without calling a method on `b` itself. `b` is often a buffer the
 * runtime made (a socket's read, in Bun), and `slice`, `subarray` or `.buffer` on one has the
 * runtime give it an ArrayBuffer of its own: one per read, which made each young collection of the
 * intercepting proxy last about three times as long (docs/benchmarks.md, "Interception"). `set`
 * reads it without that, so the whole read is staged in a kept buffer and the part sliced from there.
 */
export function copyOf(b: Uint8Array, from = 0, to = b.length): Uint8Array {
  if (from === 0 && to === b.length) {
    const whole = new Uint8Array(b.length);
    whole.set(b);
    return whole;
  }
  return staged(b).slice(from, to);
}

/** A kept buffer holding `b` from its start: valid until the next call (a view of it is cheap, see copyOf). */
export function staged(b: Uint8Array): Uint8Array {
  if (staging.length < b.length) staging = new Uint8Array(Math.max(b.length, staging.length * 2));
  staging.set(b);
  return staging;
}

/** `b[from, to)` for a body or tunnel event: `b` itself when that is all of it, else a copy (copyOf), never a view. */
export function part(b: Uint8Array, from: number, to: number): Uint8Array {
  return from === 0 && to === b.length ? b : copyOf(b, from, to);
}

export function byteName(c: number): string {
  return `byte 0x${c.toString(16).padStart(2, "0")}`;
}

function decode(b: Uint8Array, from: number, to: number): string {
  if (to - from <= 8192) return String.fromCharCode.apply(null, b.subarray(from, to) as unknown as number[]);
  let s = "";
  for (let i = from; i < to; i += 8192) s += decode(b, i, Math.min(to, i + 8192));
  return s;
}

/** `b[from, to)` as a Latin-1 string (for messages and other one-off strings). */
export function latin1(b: Uint8Array, from: number, to: number): string {
  return to === from ? "" : decode(b, from, to);
}

/**
 * WHATWG's "latin1" is windows-1252: it maps 27 of the bytes 0x80..0x9F above U+00FF and every
 * other byte to itself, so a text without a char above U+00FF is the Latin-1 text.
 */
const DECODER = new TextDecoder("latin1");
const BEYOND_LATIN1 = /[^\x00-\xff]/;

/** The bytes of one head (or trailer section) as text, decoded on the first `slice`. */
export class HeadText {
  readonly bytes: Uint8Array;
  #text: string | null = null;

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
  }

  /** The Latin-1 text of `bytes[from, to)`. */
  slice(from: number, to: number): string {
    let t = this.#text;
    if (t === null) {
      t = DECODER.decode(this.bytes);
      if (BEYOND_LATIN1.test(t)) t = decode(this.bytes, 0, this.bytes.length);
      this.#text = t;
    }
    return t.slice(from, to);
  }
}

/**
 * True when `s` is `lower` in any letter case; `lower` holds only lowercase letters and "-", so
 * setting bit 0x20 of each char compares without allocating.
 */
export function equalsLower(s: string, lower: string): boolean {
  if (s.length !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) if ((s.charCodeAt(i) | 0x20) !== lower.charCodeAt(i)) return false;
  return true;
}

/** `s` (a token: ASCII) in lowercase; `s` itself when it has no uppercase letter. */
export function asciiLower(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 65 && c <= 90) return s.toLowerCase();
  }
  return s;
}
