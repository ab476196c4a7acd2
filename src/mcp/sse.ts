/**
 * A streaming parser of text/event-stream (WHATWG HTML, "Server-sent events", section 9.2.6
 * "Interpreting an event stream"), for SSE answers to MCP Streamable HTTP requests.
 *
 * Guaranteed: `push` returns every block completed by the bytes given so far, at once, so a
 * caller can flush each event as it arrives; a block is the bytes from the end of the previous
 * block through a blank line, with its parsed fields and `raw`, the exact bytes, so an event
 * passed through unchanged is forwarded byte for byte. The concatenation of all raws and of
 * `finish()` is the stream. Lines end in CRLF, LF or CR; a CR's LF is taken as part of the same
 * line ending, and when that CR ended a block the LF opens the next block's raw (so raws are the
 * same however the stream is cut). A block without a data line (comments, a lone id) has
 * `dispatch` false: a browser would not fire an event for it, but its bytes still pass.
 * `id` is the block's own id field (null when it has none); `lastEventId` keeps the stream's.
 * One UTF-8 BOM at the start of the stream is ignored; invalid UTF-8 becomes U+FFFD.
 * Rejected: a block over `maxEventBytes` (mcp_sse_too_large), counting its bytes up to its last
 * line ending (excluded), whether it ended or not; the error then sticks. So whether a stream is
 * refused does not depend on how it is cut into pushes.
 */
import { McpError, mcpError } from "./errors.ts";

export interface SseEvent {
  readonly raw: Uint8Array;
  readonly dispatch: boolean;
  /** The event field, "message" when none or empty. */
  readonly type: string;
  /** The data lines joined with LF. */
  readonly data: string;
  readonly id: string | null;
  readonly retry: number | null;
}

export const DEFAULT_MAX_EVENT_BYTES = 4 * 1024 * 1024;

const LF = 0x0a;
const CR = 0x0d;
const decoder = new TextDecoder("utf-8", { ignoreBOM: true });

export class SseParser {
  private readonly max: number;
  private buf = new Uint8Array(1024);
  private len = 0;
  /** Start of the current line, relative to the current block (which starts at 0). */
  private lineStart = 0;
  private scanned = 0;
  private skipLF = false;
  private firstLine = true;
  private type = "";
  private data = "";
  private id: string | null = null;
  private retry: number | null = null;
  private failed: McpError | null = null;
  lastEventId = "";

  constructor(options?: { maxEventBytes?: number }) {
    this.max = options?.maxEventBytes ?? DEFAULT_MAX_EVENT_BYTES;
  }

  push(chunk: Uint8Array): SseEvent[] {
    if (this.failed !== null) throw this.failed;
    this.append(chunk);
    const out: SseEvent[] = [];
    let blockStart = 0;
    let i = this.scanned;
    while (i < this.len) {
      const b = this.buf[i] as number;
      if (this.skipLF) {
        this.skipLF = false;
        if (b === LF) {
          this.lineStart = ++i;
          continue;
        }
      }
      if (b !== LF && b !== CR) {
        i++;
        continue;
      }
      const line = this.buf.subarray(this.lineStart, i);
      this.skipLF = b === CR;
      this.lineStart = ++i;
      if (this.line(line)) {
        if (this.size(blockStart, i) > this.max) throw this.tooLarge();
        out.push(this.take(this.buf.slice(blockStart, i)));
        blockStart = i;
      }
    }
    this.scanned = i;
    this.compact(blockStart);
    if (this.size(0, this.len) > this.max) throw this.tooLarge();
    return out;
  }

  /** The bytes of `buf[from, to)` without the CR and LF at its end: what the limit counts. */
  private size(from: number, to: number): number {
    let end = to;
    while (end > from && (this.buf[end - 1] === LF || this.buf[end - 1] === CR)) end--;
    return end - from;
  }

  private tooLarge(): McpError {
    this.failed = mcpError("mcp_sse_too_large", `a server-sent event of over ${this.max} bytes`);
    return this.failed;
  }

  /** The bytes after the last complete block (an unfinished event, never dispatched). */
  finish(): Uint8Array {
    if (this.failed !== null) throw this.failed;
    const rest = this.buf.slice(0, this.len);
    this.len = this.lineStart = this.scanned = 0;
    this.type = this.data = "";
    this.id = this.retry = null;
    return rest;
  }

  private append(chunk: Uint8Array): void {
    if (this.len + chunk.length > this.buf.length) {
      const grown = new Uint8Array(Math.max(this.buf.length * 2, this.len + chunk.length));
      grown.set(this.buf.subarray(0, this.len));
      this.buf = grown;
    }
    this.buf.set(chunk, this.len);
    this.len += chunk.length;
  }

  private compact(from: number): void {
    if (from === 0) return;
    this.buf.copyWithin(0, from, this.len);
    this.len -= from;
    this.lineStart -= from;
    this.scanned -= from;
  }

  /** Applies one line; true when it is blank (the block ends). */
  private line(bytes: Uint8Array): boolean {
    let text = decoder.decode(bytes);
    if (this.firstLine) {
      this.firstLine = false;
      if (text.startsWith("\uFEFF")) text = text.slice(1);
    }
    if (text === "") return true;
    if (text.startsWith(":")) return false;
    const colon = text.indexOf(":");
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.type = value;
    else if (field === "data") this.data += `${value}\n`;
    else if (field === "id" && !value.includes("\0")) this.id = this.lastEventId = value;
    else if (field === "retry" && /^[0-9]+$/.test(value)) this.retry = Number(value);
    return false;
  }

  private take(raw: Uint8Array): SseEvent {
    const e: SseEvent = Object.freeze({
      raw,
      dispatch: this.data !== "",
      type: this.type === "" ? "message" : this.type,
      data: this.data.endsWith("\n") ? this.data.slice(0, -1) : this.data,
      id: this.id,
      retry: this.retry,
    });
    this.type = this.data = "";
    this.id = this.retry = null;
    return e;
  }
}

/**
 * Characters some SSE clients end a line at besides CR and LF: Python's str.splitlines, which
 * httpx-sse before 0.4.2 (the MCP Python SDK's client) split on.
 */
const OTHER_BREAKS = /[\u000b\u000c\u001c-\u001e\u0085\u2028\u2029]/;

/**
 * True when every SSE client cuts `raw` (a block's bytes, SseEvent.raw) into the lines this parser
 * did: no CR inside it but before an LF (a Go client, go-sdk's bufio.Scanner, ends lines at LF
 * only, so the lines a lone CR ends are one to it), and none of OTHER_BREAKS (a client splitting
 * there finds lines this parser did not). A block's last byte may be a CR: a client that does
 * not end the line there reads it with the next block's first line, which it then ignores.
 */
export function plainBlock(raw: Uint8Array): boolean {
  for (let i = 0; i < raw.length; i++) {
    const b = raw[i] as number;
    if (b === CR) {
      if (i + 1 < raw.length && raw[i + 1] !== LF) return false;
    } else if (b === 0x0b || b === 0x0c || (b >= 0x1c && b <= 0x1e)) return false;
    else if (b === 0xc2 && raw[i + 1] === 0x85) return false;
    else if (b === 0xe2 && raw[i + 1] === 0x80 && (raw[i + 2] === 0xa8 || raw[i + 2] === 0xa9)) return false;
  }
  return true;
}

/** True when `text` (an event's type or id) holds one of OTHER_BREAKS. */
export function hasOtherBreak(text: string): boolean {
  return OTHER_BREAKS.test(text);
}

/**
 * A JSON text with U+0085, U+2028 and U+2029 written as \u escapes: the same JSON value (in valid
 * JSON they can only be inside strings), with nothing a client could take for a line break.
 */
export function escapeBreaks(json: string): string {
  return json.replace(/[\u0085\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

export interface SseEventInit {
  readonly type?: string;
  readonly data: string;
  readonly id?: string | null;
  readonly retry?: number | null;
}

/**
 * The bytes of one event: `event:` (unless "message" or absent), `id:`, `retry:`, one `data:`
 * line per line of data (split at CRLF, LF or CR), then a blank line. Parsing them gives back
 * the same type, data, id and retry. Refused (mcp_bad_sse_event): a type or id with CR or LF,
 * an id with NUL, a retry that is not a non-negative safe integer.
 */
export function serializeEvent(e: SseEventInit): Uint8Array {
  const lines: string[] = [];
  const bad = (why: string): McpError => mcpError("mcp_bad_sse_event", why);
  if (e.type !== undefined && e.type !== "message") {
    if (/[\r\n]/.test(e.type)) throw bad("an event type with CR or LF");
    lines.push(`event: ${e.type}`);
  }
  if (e.id !== undefined && e.id !== null) {
    if (/[\r\n\0]/.test(e.id)) throw bad("an event id with CR, LF or NUL");
    lines.push(`id: ${e.id}`);
  }
  if (e.retry !== undefined && e.retry !== null) {
    if (!Number.isSafeInteger(e.retry) || e.retry < 0) throw bad("a retry that is not a non-negative integer");
    lines.push(`retry: ${e.retry}`);
  }
  for (const d of e.data.split(/\r\n|\r|\n/)) lines.push(`data: ${d}`);
  return new TextEncoder().encode(`${lines.join("\n")}\n\n`);
}
