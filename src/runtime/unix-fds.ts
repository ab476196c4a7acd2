/**
 * Unix stream sockets through bun:ffi, for what Bun's own sockets do not give (PLATFORM-NOTES.md):
 * the peer's credentials (SO_PEERCRED, unix(7)) and descriptors passed with SCM_RIGHTS
 * (sendmsg(2), recvmsg(2), cmsg(3)). Two layers (../shared/STYLE.md, point 10): the raw symbol
 * table, and typed wrappers that throw `UnixFdError` carrying errno.
 *
 * Guaranteed: every descriptor made or received here is close-on-exec (SOCK_CLOEXEC,
 * MSG_CMSG_CLOEXEC), so no child started meanwhile inherits one; a listener and what it accepts are
 * non-blocking, so a caller polls them, or has SIGIO say when to (`signalWhenReadable`), and never
 * blocks the event loop. `receive` returns every descriptor that arrived, and says when the kernel
 * dropped some (MSG_CTRUNC): the caller must then refuse. Sends never raise SIGPIPE
 * (MSG_NOSIGNAL). Layouts are glibc's on 64-bit Linux (x86-64, arm64); anything else throws
 * `unix_fds_unavailable`.
 */
import { dlopen, FFIType, ptr } from "bun:ffi";
import { TidegateError } from "../errors.ts";
import { errno, Errno, errnoName, getpid, libc } from "./libc.ts";

export type UnixFdErrorCode = "unix_fds_unavailable" | "unix_fds_failed" | "unix_fds_bad_argument";

export class UnixFdError extends TidegateError<UnixFdErrorCode> {
  /** errno of the failed call; 0 when no call failed. */
  readonly errno: number;

  constructor(code: UnixFdErrorCode, message: string, errnoValue = 0, options?: { cause?: unknown }) {
    super(code, message, options);
    this.errno = errnoValue;
  }
}

const { i32, i64, u32, ptr: P } = FFIType;

const SYMBOLS = {
  socket: { args: [i32, i32, i32], returns: i32 },
  socketpair: { args: [i32, i32, i32, P], returns: i32 },
  bind: { args: [i32, P, u32], returns: i32 },
  listen: { args: [i32, i32], returns: i32 },
  accept4: { args: [i32, P, P, i32], returns: i32 },
  connect: { args: [i32, P, u32], returns: i32 },
  getsockopt: { args: [i32, i32, i32, P, P], returns: i32 },
  sendmsg: { args: [i32, P, i32], returns: i64 },
  recvmsg: { args: [i32, P, i32], returns: i64 },
  pipe2: { args: [P, i32], returns: i32 },
  close: { args: [i32], returns: i32 },
  shutdown: { args: [i32, i32], returns: i32 },
} as const;

type Symbols = ReturnType<typeof dlopen<typeof SYMBOLS>>["symbols"];
let opened: Symbols | null = null;

/** The raw symbol table; `unix_fds_unavailable` off 64-bit glibc Linux. */
export function sockets(): Symbols {
  if (opened !== null) return opened;
  if (process.platform !== "linux" || (process.arch !== "x64" && process.arch !== "arm64")) {
    throw new UnixFdError("unix_fds_unavailable", `unix sockets: descriptor passing needs 64-bit Linux (this is ${process.platform}/${process.arch})`);
  }
  try {
    opened = dlopen("libc.so.6", SYMBOLS).symbols;
  } catch (e) {
    throw new UnixFdError("unix_fds_unavailable", "unix sockets: cannot open libc.so.6 (Linux with glibc only)", 0, { cause: e });
  }
  return opened;
}

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const O_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
const SCM_RIGHTS = 1;
const MSG_CTRUNC = 0x8;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
const MSG_CMSG_CLOEXEC = 0x40000000;
const SHUT_WR = 1;
const F_GETFL = 3;
const F_SETFL = 4;
const F_SETOWN = 8;
const O_ASYNC = 0o20000;
/** sizeof(struct sockaddr_un): sun_family and a 108-byte path. */
const SOCKADDR_UN = 110;
const MSGHDR = 56;
const CMSG_HEADER = 16;
/** At most this many descriptors in one message; more are dropped by the kernel (MSG_CTRUNC). */
export const MAX_FDS = 16;
const CONTROL = CMSG_HEADER + MAX_FDS * 4;

/** Retries on EINTR; null on EAGAIN when `wouldBlockIsNull`; else the result, or UnixFdError. */
function call(what: string, fn: () => number | bigint, wouldBlockIsNull: boolean): number | null {
  for (;;) {
    const r = Number(fn());
    if (r >= 0) return r;
    const e = errno();
    if (e === Errno.EINTR) continue;
    if (wouldBlockIsNull && e === Errno.EAGAIN) return null;
    throw new UnixFdError("unix_fds_failed", `unix sockets: ${what} failed: ${errnoName(e)}`, e);
  }
}

function address(path: string): Uint8Array {
  const bytes = new TextEncoder().encode(path);
  if (bytes.length === 0 || bytes.length >= SOCKADDR_UN - 2 || bytes.includes(0)) {
    throw new UnixFdError("unix_fds_bad_argument", `unix sockets: ${JSON.stringify(path.slice(0, 128))} cannot be a socket path (1 to 107 bytes, no NUL)`);
  }
  const sa = new Uint8Array(SOCKADDR_UN);
  new DataView(sa.buffer).setUint16(0, AF_UNIX, true);
  sa.set(bytes, 2);
  return sa;
}

/**
 * A non-blocking listening socket bound at `path` (which must not exist: the caller removes a
 * stale one). The file's mode is whatever the umask leaves: the caller sets it before announcing.
 */
export function listenUnix(path: string, backlog = 64): number {
  const sa = address(path);
  const fd = call("socket(AF_UNIX)", () => sockets().socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), false)!;
  try {
    call(`bind(${JSON.stringify(path)})`, () => sockets().bind(fd, ptr(sa), SOCKADDR_UN), false);
    call("listen", () => sockets().listen(fd, backlog), false);
  } catch (e) {
    sockets().close(fd);
    throw e;
  }
  return fd;
}

/** The next pending connection (non-blocking, close-on-exec), or null when there is none. */
export function acceptConnection(listenFd: number): number | null {
  return call("accept4", () => sockets().accept4(listenFd, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC), true);
}

/** A blocking, close-on-exec connection to the socket at `path`. */
export function connectUnix(path: string): number {
  const sa = address(path);
  const fd = call("socket(AF_UNIX)", () => sockets().socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), false)!;
  try {
    call(`connect(${JSON.stringify(path)})`, () => sockets().connect(fd, ptr(sa), SOCKADDR_UN), false);
  } catch (e) {
    sockets().close(fd);
    throw e;
  }
  return fd;
}

/** Two connected stream sockets, close-on-exec (tests, and a parent talking to a child). */
export function socketPair(): [number, number] {
  const fds = new Int32Array(2);
  call("socketpair", () => sockets().socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ptr(fds)), false);
  return [fds[0]!, fds[1]!];
}

/** A close-on-exec pipe: [read end, write end]. */
export function pipe(): [number, number] {
  const fds = new Int32Array(2);
  call("pipe2", () => sockets().pipe2(ptr(fds), O_CLOEXEC), false);
  return [fds[0]!, fds[1]!];
}

export interface PeerCredentials {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
}

/**
 * The peer's process id, effective uid and gid as the kernel recorded them when it connected
 * (SO_PEERCRED, unix(7)): what the peer cannot forge, whatever it sends.
 */
export function peerCredentials(fd: number): PeerCredentials {
  const cred = new Uint32Array(3);
  const len = new Uint32Array([12]);
  call("getsockopt(SO_PEERCRED)", () => sockets().getsockopt(fd, SOL_SOCKET, SO_PEERCRED, ptr(cred), ptr(len)), false);
  if (len[0] !== 12) throw new UnixFdError("unix_fds_failed", `unix sockets: SO_PEERCRED returned ${len[0]} bytes, want 12`);
  return { pid: cred[0]!, uid: cred[1]!, gid: cred[2]! };
}

function message(iov: BigUint64Array, control: Uint8Array | null, controlLength: number): Uint8Array {
  const hdr = new Uint8Array(MSGHDR);
  const v = new DataView(hdr.buffer);
  v.setBigUint64(16, BigInt(ptr(iov)), true);
  v.setBigUint64(24, 1n, true);
  if (control !== null) {
    v.setBigUint64(32, BigInt(ptr(control)), true);
    v.setBigUint64(40, BigInt(controlLength), true);
  }
  return hdr;
}

/**
 * Sends up to all of `data` with `fds` attached (SCM_RIGHTS) in one sendmsg; returns the bytes
 * sent (the descriptors travel with the first of them). Blocking sockets send everything unless a
 * signal interrupts; non-blocking ones return null when nothing could be sent.
 */
export function sendWithFds(fd: number, data: Uint8Array, fds: readonly number[] = []): number | null {
  if (data.length === 0) throw new UnixFdError("unix_fds_bad_argument", "unix sockets: sendmsg needs at least one byte to carry descriptors");
  if (fds.length > MAX_FDS || fds.some((f) => !Number.isInteger(f) || f < 0)) {
    throw new UnixFdError("unix_fds_bad_argument", `unix sockets: cannot pass descriptors [${fds.join(",")}] (at most ${MAX_FDS})`);
  }
  const iov = new BigUint64Array([BigInt(ptr(data)), BigInt(data.length)]);
  let control: Uint8Array | null = null;
  let controlLength = 0;
  if (fds.length > 0) {
    const len = CMSG_HEADER + fds.length * 4;
    controlLength = (len + 7) & ~7;
    control = new Uint8Array(controlLength);
    const c = new DataView(control.buffer);
    c.setBigUint64(0, BigInt(len), true);
    c.setInt32(8, SOL_SOCKET, true);
    c.setInt32(12, SCM_RIGHTS, true);
    fds.forEach((f, i) => c.setInt32(CMSG_HEADER + i * 4, f, true));
  }
  const hdr = message(iov, control, controlLength);
  const sent = call("sendmsg", () => sockets().sendmsg(fd, ptr(hdr), MSG_NOSIGNAL), true);
  keep(data, iov, control, hdr);
  return sent;
}

/** Writes all of `data` on a blocking socket (no descriptors); throws when the peer is gone. */
export function sendAll(fd: number, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) {
    const n = sendWithFds(fd, data.subarray(off));
    if (n === null) throw new UnixFdError("unix_fds_failed", "unix sockets: sendmsg would block on a blocking socket", Errno.EAGAIN);
    off += n;
  }
}

export interface Received {
  /** Empty at end of stream (the peer closed its side). */
  readonly bytes: Uint8Array;
  /** Descriptors that came with these bytes, already close-on-exec; the caller owns them. */
  readonly fds: number[];
  /** The kernel dropped descriptors or control data that did not fit (MSG_CTRUNC). */
  readonly truncated: boolean;
}

/** Reused between calls: polling many sockets must not allocate a buffer per empty read. */
let scratch = new Uint8Array(0);

/** One recvmsg of up to `max` bytes without blocking; null when nothing is there yet. */
export function receive(fd: number, max: number): Received | null {
  if (!Number.isInteger(max) || max < 1) throw new UnixFdError("unix_fds_bad_argument", `unix sockets: cannot receive ${max} bytes`);
  if (scratch.length < max) scratch = new Uint8Array(max);
  const buf = scratch;
  const iov = new BigUint64Array([BigInt(ptr(buf)), BigInt(max)]);
  const control = new Uint8Array(CONTROL);
  const hdr = message(iov, control, CONTROL);
  const n = call("recvmsg", () => sockets().recvmsg(fd, ptr(hdr), MSG_DONTWAIT | MSG_CMSG_CLOEXEC), true);
  keep(buf, iov, control, hdr);
  if (n === null) return null;
  const v = new DataView(hdr.buffer);
  const flags = v.getInt32(48, true);
  const controlUsed = Number(v.getBigUint64(40, true));
  return { bytes: buf.slice(0, n), fds: rightsIn(control, controlUsed), truncated: (flags & MSG_CTRUNC) !== 0 };
}

/** Every SCM_RIGHTS descriptor in a control buffer (cmsg(3) walk). */
function rightsIn(control: Uint8Array, used: number): number[] {
  const c = new DataView(control.buffer);
  const out: number[] = [];
  let off = 0;
  while (off + CMSG_HEADER <= Math.min(used, control.length)) {
    const len = Number(c.getBigUint64(off, true));
    if (len < CMSG_HEADER || off + len > control.length) break;
    if (c.getInt32(off + 8, true) === SOL_SOCKET && c.getInt32(off + 12, true) === SCM_RIGHTS) {
      for (let i = CMSG_HEADER; i + 4 <= len; i += 4) out.push(c.getInt32(off + i, true));
    }
    off += (len + 7) & ~7;
  }
  return out;
}

/** Closes `fd`; an already closed one is not an error. */
export function closeFd(fd: number): void {
  if (sockets().close(fd) >= 0) return;
  const e = errno();
  // After EINTR Linux has closed the descriptor already; retrying could close another one.
  if (e !== Errno.EBADF && e !== Errno.EINTR) throw new UnixFdError("unix_fds_failed", `unix sockets: close(${fd}) failed: ${errnoName(e)}`, e);
}

/** Ends the sending half: the peer reads end of stream once it has read what was sent. */
export function shutdownWrite(fd: number): void {
  call("shutdown(SHUT_WR)", () => sockets().shutdown(fd, SHUT_WR), false);
}

/** Descriptors that raise SIGIO for this process, each with what it wants told. */
const sigioWatchers = new Map<number, () => void>();
let sigioListening = false;

/**
 * Has the kernel signal this process (SIGIO, through O_ASYNC and F_SETOWN: fcntl(2)) when `fd`
 * becomes readable (for a listening socket: a connection waits), and calls `onReadable` then,
 * from the event loop, so a caller need not poll an idle descriptor. SIGIO names no descriptor:
 * every watcher is told of every signal and must take it as "look now", doing nothing when
 * nothing is ready; and signals coalesce, so a watcher drains all that is ready each time.
 *
 * The process's SIGIO listener, added with the first watcher, stays for the life of the process:
 * SIGIO's default action ends it, and a signal raised just before the last watcher went must not.
 * Returns what stops the watch (O_ASYNC cleared, the watcher forgotten): call it before closing
 * `fd`.
 */
export function signalWhenReadable(fd: number, onReadable: () => void): () => void {
  if (sigioWatchers.has(fd)) throw new UnixFdError("unix_fds_bad_argument", `unix sockets: descriptor ${fd} is watched already`);
  if (!sigioListening) {
    process.on("SIGIO", () => {
      for (const told of [...sigioWatchers.values()]) told();
    });
    sigioListening = true;
  }
  sigioWatchers.set(fd, onReadable);
  try {
    call(`fcntl(${fd}, F_SETOWN)`, () => libc().fcntl(fd, F_SETOWN, getpid()), false);
    const flags = call(`fcntl(${fd}, F_GETFL)`, () => libc().fcntl(fd, F_GETFL, 0), false)!;
    call(`fcntl(${fd}, F_SETFL, O_ASYNC)`, () => libc().fcntl(fd, F_SETFL, flags | O_ASYNC), false);
  } catch (e) {
    sigioWatchers.delete(fd);
    throw e;
  }
  return () => {
    if (!sigioWatchers.delete(fd)) return;
    const flags = libc().fcntl(fd, F_GETFL, 0);
    if (flags >= 0) libc().fcntl(fd, F_SETFL, flags & ~O_ASYNC);
  };
}

function keep(..._values: unknown[]): void {}
