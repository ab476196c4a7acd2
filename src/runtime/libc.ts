/**
 * glibc through bun:ffi, in two layers (../shared/STYLE.md, point 10): `libc()` is the raw symbol
 * table of libc.so.6, opened on first use; the functions below are typed wrappers that throw a
 * `LibcError` carrying `errno` and naming the call and its (non-secret) arguments.
 *
 * Threads: Bun runs several threads. glibc's setresuid, setresgid and setgroups apply to every
 * thread of the process (glibc signals each one); prctl, capset, sigaction masks and execve act on
 * the calling thread, which is the JavaScript thread: the one that later calls execve. Only
 * Linux with glibc is supported; anything else throws `libc_unavailable` on first use.
 */
import { dlopen, FFIType, ptr, read } from "bun:ffi";
import { TidegateError } from "../errors.ts";

export type LibcErrorCode = "libc_unavailable" | "libc_failed" | "libc_bad_argument";

export class LibcError extends TidegateError<LibcErrorCode> {
  /** errno of the failed call; 0 when the failure was not a call's (unavailable, bad argument). */
  readonly errno: number;

  constructor(code: LibcErrorCode, message: string, errno = 0, options?: { cause?: unknown }) {
    super(code, message, options);
    this.errno = errno;
  }
}

/** errno values (Linux, asm-generic) that callers branch on or that messages name. */
export const Errno = {
  EPERM: 1, ENOENT: 2, ESRCH: 3, EINTR: 4, EIO: 5, E2BIG: 7, ENOEXEC: 8, EBADF: 9, EAGAIN: 11,
  ENOMEM: 12, EACCES: 13, EFAULT: 14, EBUSY: 16, EEXIST: 17, ENODEV: 19, ENOTDIR: 20, EISDIR: 21,
  EINVAL: 22, EMFILE: 24, ETXTBSY: 26, ENOSPC: 28, EROFS: 30, EPIPE: 32, ENAMETOOLONG: 36, ENOSYS: 38,
  ENOTEMPTY: 39, ELOOP: 40, ENOTSOCK: 88, EMSGSIZE: 90, ENOPROTOOPT: 92, EOPNOTSUPP: 95, EADDRINUSE: 98, ECONNRESET: 104,
  ECONNREFUSED: 111, ESTALE: 116, ENOTSUPP: 524,
} as const;

const ERRNO_NAMES = new Map<number, string>(Object.entries(Errno).map(([k, v]) => [v, k]));

/** "EPERM", or "errno 95" for a value without a name here. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}

const { i32, u32, u64, i64, ptr: P } = FFIType;

const SYMBOLS = {
  __errno_location: { args: [], returns: P },
  getpid: { args: [], returns: i32 },
  getsid: { args: [i32], returns: i32 },
  setsid: { args: [], returns: i32 },
  // prctl and fcntl are variadic in C; integer arguments pass in the same registers on x86-64 and arm64.
  prctl: { args: [i32, u64, u64, u64, u64], returns: i32 },
  fcntl: { args: [i32, i32, u64], returns: i32 },
  setgroups: { args: [u64, P], returns: i32 },
  setresgid: { args: [u32, u32, u32], returns: i32 },
  setresuid: { args: [u32, u32, u32], returns: i32 },
  capset: { args: [P, P], returns: i32 },
  sigaction: { args: [i32, P, P], returns: i32 },
  sigprocmask: { args: [i32, P, P], returns: i32 },
  execve: { args: [P, P, P], returns: i32 },
  close: { args: [i32], returns: i32 },
  flock: { args: [i32, i32], returns: i32 },
  // variadic in C: an integer argument passes in the same register as a pointer
  ioctl: { args: [i32, u64, u64], returns: i32 },
  // variadic in C: integer and pointer arguments pass in the same registers on x86-64 and arm64
  syscall: { args: [i64, u64, u64, u64], returns: i64 },
} as const;

type Symbols = ReturnType<typeof dlopen<typeof SYMBOLS>>["symbols"];

let opened: Symbols | null = null;

/** `symbols` of libc.so.6; `libc_unavailable` where it cannot be opened (not glibc Linux). */
function open<T extends Record<string, { args: readonly FFIType[]; returns: FFIType }>>(symbols: T) {
  if (process.platform !== "linux") throw new LibcError("libc_unavailable", `libc: not available on ${process.platform} (Linux with glibc only)`);
  try {
    return dlopen("libc.so.6", symbols).symbols;
  } catch (e) {
    throw new LibcError("libc_unavailable", "libc: cannot open libc.so.6 (Linux with glibc only)", 0, { cause: e });
  }
}

/** The raw symbol table. Throws `libc_unavailable` where libc.so.6 cannot be opened (not glibc Linux). */
export function libc(): Symbols {
  return (opened ??= open(SYMBOLS));
}

/** errno of the calling thread, read right after a failed call. */
export function errno(): number {
  return errnoVia(libc());
}

/** errno read through whichever table is open (version's probe binds only syscall and errno). */
function errnoVia(s: Pick<Symbols, "__errno_location">): number {
  const where = s.__errno_location();
  return where === null ? 0 : read.i32(where, 0);
}

function check(r: number, what: string): number {
  if (r >= 0) return r;
  const e = errno();
  throw new LibcError("libc_failed", `libc: ${what} failed: ${errnoName(e)}`, e);
}

export function getpid(): number {
  return libc().getpid();
}

/** The session id of this process. */
export function getsid(): number {
  return check(libc().getsid(0), "getsid");
}

/** setsid(2): a new session, with no controlling terminal. */
export function setsid(): number {
  return check(libc().setsid(), "setsid");
}

const TIOCSCTTY = 0x540e;

/**
 * ioctl(fd, TIOCSCTTY, 0): the terminal on `fd` becomes the controlling terminal of this session
 * (this process must lead a session that has none). Never steals one: a terminal that is already
 * another session's is refused (EPERM).
 */
export function setControllingTerminal(fd: number): void {
  check(libc().ioctl(fd, TIOCSCTTY, 0), `ioctl(${fd}, TIOCSCTTY)`);
}

// prctl(2) options used by the launcher.
export const PR_CAPBSET_READ = 23;
export const PR_CAPBSET_DROP = 24;
export const PR_SET_NO_NEW_PRIVS = 38;
export const PR_GET_NO_NEW_PRIVS = 39;
export const PR_CAP_AMBIENT = 47;
export const PR_CAP_AMBIENT_CLEAR_ALL = 4;

/** prctl(2) on the calling thread; `what` names the call in the error. Returns prctl's result. */
export function prctl(what: string, option: number, arg2 = 0, arg3 = 0, arg4 = 0, arg5 = 0): number {
  return check(libc().prctl(option, arg2, arg3, arg4, arg5), `prctl(${what})`);
}

function id(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value >= 0xffffffff) {
    throw new LibcError("libc_bad_argument", `libc: ${what} ${JSON.stringify(value)} is not an id (0 to 4294967294)`);
  }
  return value;
}

/** setgroups(2) through glibc: every thread gets exactly `gids` as supplementary groups. */
export function setgroups(gids: readonly number[]): void {
  const list = new Uint32Array(Math.max(1, gids.length));
  gids.forEach((g, i) => (list[i] = id(g, "group id")));
  check(libc().setgroups(gids.length, ptr(list)), `setgroups([${gids.join(",")}])`);
}

/** Real, effective and saved group id of every thread set to `gid`. */
export function setresgid(gid: number): void {
  id(gid, "group id");
  check(libc().setresgid(gid, gid, gid), `setresgid(${gid}, ${gid}, ${gid})`);
}

/**
 * Real, effective and saved user id of every thread set to `uid`. From root to a non-zero uid the
 * kernel clears the permitted, effective and ambient capabilities (capabilities(7)).
 */
export function setresuid(uid: number): void {
  id(uid, "user id");
  check(libc().setresuid(uid, uid, uid), `setresuid(${uid}, ${uid}, ${uid})`);
}

const LINUX_CAPABILITY_VERSION_3 = 0x20080522;

/** capset(2): the calling thread's effective, permitted and inheritable sets all emptied. */
export function clearThreadCapabilities(): void {
  const header = new Uint32Array([LINUX_CAPABILITY_VERSION_3, 0]);
  const data = new Uint32Array(6); // two {effective, permitted, inheritable} words, all zero
  check(libc().capset(ptr(header), ptr(data)), "capset(all sets empty)");
}

const F_GETFD = 1;
const F_SETFD = 2;
const FD_CLOEXEC = 1;

/** Marks `fd` close-on-exec. A descriptor that is already closed (EBADF) is not an error. */
export function setCloseOnExec(fd: number): void {
  const flags = libc().fcntl(fd, F_GETFD, 0);
  if (flags < 0) {
    if (errno() === Errno.EBADF) return;
    check(flags, `fcntl(${fd}, F_GETFD)`);
  }
  check(libc().fcntl(fd, F_SETFD, flags | FD_CLOEXEC), `fcntl(${fd}, F_SETFD, FD_CLOEXEC)`);
}

const LOCK_EX = 2;
const LOCK_NB = 4;

/**
 * flock(fd, LOCK_EX | LOCK_NB): true when this open file now holds the exclusive lock, false when
 * another open file holds it (EWOULDBLOCK). The kernel drops the lock when the last descriptor of
 * the open file closes, so also when the process dies, however it dies.
 */
export function tryLockExclusive(fd: number): boolean {
  if (libc().flock(fd, LOCK_EX | LOCK_NB) === 0) return true;
  const e = errno();
  if (e === Errno.EAGAIN) return false;
  throw new LibcError("libc_failed", `libc: flock(${fd}, LOCK_EX|LOCK_NB) failed: ${errnoName(e)}`, e);
}

// glibc's struct sigaction is 152 bytes on x86-64 and arm64; zeros mean SIG_DFL, empty mask, no flags.
const SIGACTION_BYTES = 256;
const SIGSET_BYTES = 128;
const SIG_SETMASK = 2;

/** Signal `sig` back to its default action (what a fresh process has). */
export function defaultSignal(sig: number): void {
  check(libc().sigaction(sig, ptr(new Uint8Array(SIGACTION_BYTES)), null), `sigaction(${sig}, SIG_DFL)`);
}

/** The calling thread's signal mask emptied (glibc keeps its own internal signals usable). */
export function unblockAllSignals(): void {
  check(libc().sigprocmask(SIG_SETMASK, ptr(new Uint8Array(SIGSET_BYTES)), null), "sigprocmask(SIG_SETMASK, empty)");
}

/** `text` as a NUL-terminated C string; a NUL inside cannot be passed and is refused. */
export function cString(text: string | Uint8Array, what: string): Uint8Array {
  const bytes = typeof text === "string" ? new TextEncoder().encode(text) : text;
  if (bytes.includes(0)) throw new LibcError("libc_bad_argument", `libc: ${what} contains a NUL byte`);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

function pointerArray(strings: readonly Uint8Array[]): BigUint64Array {
  const array = new BigUint64Array(strings.length + 1); // NULL-terminated
  strings.forEach((s, i) => (array[i] = BigInt(ptr(s) as number)));
  return array;
}

/**
 * execve(2) from the calling thread: on success it does not return (the process image is
 * replaced, every other thread ends). On failure it throws `libc_failed` with errno (ENOENT,
 * EACCES, ENOEXEC, ...). `env` entries are "NAME=value" as bytes or strings, passed unchanged.
 */
export function execve(path: string, argv: readonly string[], env: readonly (string | Uint8Array)[]): never {
  const file = cString(path, `path ${JSON.stringify(path)}`);
  const args = argv.map((a, i) => cString(a, `argument ${i}`));
  const vars = env.map((v, i) => cString(v, `environment entry ${i}`));
  const argp = pointerArray(args);
  const envp = pointerArray(vars);
  libc().execve(ptr(file), ptr(argp), ptr(envp));
  // Only reached on failure; the buffers above stay referenced until here.
  const e = errno();
  keepAlive(file, args, vars, argp, envp);
  throw new LibcError("libc_failed", `libc: execve(${JSON.stringify(path)}) failed: ${errnoName(e)}`, e);
}

function keepAlive(..._values: unknown[]): void {}

let probing: { syscall: Symbols["syscall"]; __errno_location: Symbols["__errno_location"] } | null = null;

/** syscall and errno alone: `tidegate version` asks for Landlock without binding the whole table (each symbol is a compiled trampoline). */
function probeSymbols(): NonNullable<typeof probing> {
  return opened ?? (probing ??= open({ syscall: SYMBOLS.syscall, __errno_location: SYMBOLS.__errno_location }));
}

// landlock(7). New system calls take the same numbers on every architecture (the unified table).
const SYS_LANDLOCK_CREATE_RULESET = 444;
const SYS_LANDLOCK_RESTRICT_SELF = 446;
const LANDLOCK_CREATE_RULESET_VERSION = 1;
/** Landlock ABI 6 (Linux 6.12): a domain's processes reach no abstract Unix socket made outside it. */
export const LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET = 1;
/** Landlock ABI 6: a domain's processes send no signal to a process outside it. */
export const LANDLOCK_SCOPE_SIGNAL = 2;

/**
 * The kernel's Landlock ABI version; 0 when it has none (not built: ENOSYS; built but not enabled
 * at boot: EOPNOTSUPP).
 */
export function landlockAbi(): number {
  const s = probeSymbols();
  const r = Number(s.syscall(SYS_LANDLOCK_CREATE_RULESET, 0, 0, LANDLOCK_CREATE_RULESET_VERSION));
  if (r >= 0) return r;
  const e = errnoVia(s);
  if (e === Errno.ENOSYS || e === Errno.EOPNOTSUPP) return 0;
  throw new LibcError("libc_failed", `libc: landlock_create_ruleset(version) failed: ${errnoName(e)}`, e);
}

/**
 * Puts the calling thread, and what it execs, in a new Landlock domain that restricts no file or
 * network access, only `scoped` (LANDLOCK_SCOPE_*; ABI 6 or later). Any domain also keeps its
 * processes from ptrace-ing, or reading the /proc files that need ptrace access of, a process
 * outside it. Needs no_new_privs (or CAP_SYS_ADMIN); cannot be undone.
 */
export function landlockScope(scoped: number): void {
  const attr = new BigUint64Array([0n, 0n, BigInt(scoped)]); // handled_access_fs, handled_access_net, scoped
  const fd = Number(libc().syscall(SYS_LANDLOCK_CREATE_RULESET, ptr(attr), attr.byteLength, 0));
  check(fd, `landlock_create_ruleset(scoped ${scoped})`);
  try {
    check(Number(libc().syscall(SYS_LANDLOCK_RESTRICT_SELF, fd, 0, 0)), "landlock_restrict_self");
  } finally {
    libc().close(fd);
    keepAlive(attr);
  }
}
