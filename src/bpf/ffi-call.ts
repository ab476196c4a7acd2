/**
 * What every wrapper in src/bpf needs around a raw FFI call: the loaded libraries with libbpf's
 * print callback installed, errno, C strings, and BpfErrors that carry errno, the operation and
 * the tail of what libbpf printed during the failed call.
 *
 * libbpf's print callback (libbpf_set_print) receives (level, fmt, va_list); the message is
 * formatted with libc's vsnprintf on the JS thread, inside the libbpf call that printed it (every
 * libbpf call here is made from JS, so the callback never runs on another thread). On x64 and
 * arm64 a va_list argument arrives as a pointer to the caller's va_list object; a copy of that
 * object (24 or 32 bytes, what va_copy does) lets a message longer than the first buffer be
 * formatted a second time. WARN and INFO lines are kept in a short ring; DEBUG is dropped.
 */
import { JSCallback, read, toArrayBuffer, type Pointer } from "bun:ffi";
import { BpfError, errnoName, type BpfErrorCode } from "./errors.ts";
import { PRINT_FN } from "./libbpf-symbols.ts";
import { nativeLibs, type NativeLibs } from "./native-libs.ts";
import { errno } from "../runtime/libc.ts";

const RING_LINES = 400;
const TAIL_LINES = 40;
const MAX_MESSAGE = 64 << 20;
const LIBBPF_DEBUG = 2;

const recent: string[] = [];
let recentSeq = 0;
let printCallback: JSCallback | null = null;
let sink: ((level: "warn" | "info", line: string) => void) | null = null;

const textDecoder = new TextDecoder();
const textEncoder = new TextEncoder();

function keep(level: number, text: string): void {
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  for (const line of lines.slice(-RING_LINES)) {
    recent.push(line);
    recentSeq++;
    sink?.(level === 0 ? "warn" : "info", line);
  }
  if (recent.length > RING_LINES) recent.splice(0, recent.length - RING_LINES);
}

function format(l: NativeLibs, fmt: Pointer, ap: Pointer): string {
  const vaSize = process.arch === "x64" ? 24 : 32;
  const apCopy = new Uint8Array(toArrayBuffer(ap, 0, vaSize).slice(0));
  let buf = new Uint8Array(4096);
  const n = l.libc.vsnprintf(buf, buf.length, fmt, apCopy);
  if (n < 0) return "";
  if (n >= buf.length) {
    buf = new Uint8Array(Math.min(n, MAX_MESSAGE) + 1);
    const m = l.libc.vsnprintf(buf, buf.length, fmt, ap);
    if (m < 0) return "";
  }
  return textDecoder.decode(buf.subarray(0, Math.min(n, buf.length - 1)));
}

function install(l: NativeLibs): void {
  printCallback = new JSCallback((level: number, fmt: Pointer, ap: Pointer) => {
    if (level >= LIBBPF_DEBUG) return 0;
    try {
      keep(level, format(l, fmt, ap));
    } catch {
      // A message that cannot be formatted is dropped; libbpf's call goes on either way.
    }
    return 0;
  }, PRINT_FN);
  l.bpf.libbpf_set_print(printCallback.ptr);
}

/** The native libraries, with libbpf's output captured (never written to stderr). */
export function libs(): NativeLibs {
  const l = nativeLibs();
  if (printCallback === null) install(l);
  return l;
}

/** Where libbpf's WARN and INFO lines also go (e.g. the agent's log); null to stop. */
export function setLibbpfLogSink(fn: ((level: "warn" | "info", line: string) => void) | null): void {
  sink = fn;
}

/** A marker for logSince: take it just before a libbpf call. */
export function logMark(): number {
  return recentSeq;
}

/** The last lines libbpf printed after `mark` (at most TAIL_LINES). */
export function logSince(mark: number): string[] {
  const count = Math.min(recentSeq - mark, recent.length, TAIL_LINES);
  return count <= 0 ? [] : recent.slice(recent.length - count);
}

/** The calling thread's errno, read right after the failed call (../runtime/libc.ts). */
export { errno };

/** `s` as a NUL-terminated UTF-8 buffer; a NUL inside is rejected (it would cut the string). */
export function cString(s: string, op: string): Uint8Array {
  if (s.includes("\0")) throw new BpfError("bpf_layout", op, 0, `bpf: ${op}: a NUL character in ${JSON.stringify(s)}`);
  return textEncoder.encode(`${s}\0`);
}

/** "ENOENT: No such file or directory" (libbpf_strerror also names libbpf's own codes). */
export function describeErrno(err: number): string {
  const buf = new Uint8Array(256);
  libs().bpf.libbpf_strerror(err, buf, buf.length);
  const end = buf.indexOf(0);
  const text = textDecoder.decode(buf.subarray(0, end < 0 ? buf.length : end));
  return text === "" ? errnoName(err) : `${errnoName(err)}: ${text}`;
}

/**
 * A BpfError for `op` failing with `err` (positive errno). `what` names the input ("map
 * \"tg_events\"", "path \"/sys/fs/bpf/x\""). With a `mark`, libbpf's lines since then are appended.
 */
export function bpfFailure(code: BpfErrorCode, op: string, err: number, what: string, mark?: number): BpfError {
  const tail = mark === undefined ? [] : logSince(mark);
  const log = tail.length === 0 ? "" : `\nlibbpf log (last ${tail.length} lines):\n${tail.join("\n")}`;
  return new BpfError(code, op, err, `bpf: ${op} ${what} failed: ${describeErrno(err)}${log}`);
}

/** Throws unless `ret` >= 0 (libbpf 1.x: a negative return is -errno); returns `ret`. */
export function checked(ret: number, code: BpfErrorCode, op: string, what: string, mark?: number): number {
  if (ret < 0) throw bpfFailure(code, op, -ret, what, mark);
  return ret;
}

/** A pointer result: NULL means failure with errno set (libbpf 1.x). */
export function checkedPtr(p: Pointer | bigint | null, code: BpfErrorCode, op: string, what: string, mark?: number): Pointer {
  if (p === null || p === 0 || p === 0n) {
    const err = errno();
    throw bpfFailure(code, op, err === 0 ? 22 : err, what, mark);
  }
  return (typeof p === "bigint" ? Number(p) : p) as Pointer;
}
