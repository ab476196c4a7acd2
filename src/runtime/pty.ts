/**
 * A pseudo-terminal of its own for a `tidegate run` whose stdin, stdout or stderr is the caller's
 * terminal (as sudo does with `use_pty`; docs/capture.md, "`tidegate run`"). The command gets the
 * slave in place of each of those descriptors that is the terminal; this process keeps the master
 * and relays between it and the caller's terminal. When stdin is the terminal, the slave is also
 * the command's controlling terminal (`controlling`) and the caller's terminal is in raw mode for
 * the run, its input passed on; otherwise only the command's output is relayed and the caller's
 * modes are not touched. When the command ends, what is left on the master is read and written
 * out, the master is closed and the caller's terminal modes are put back: a process the command
 * left behind holds the slave alone, which then reads EOF or EIO and takes no writes, never the
 * caller's terminal (a terminal's descriptor is usually open for reading and writing, so stdout
 * alone would let a leftover read what is typed next).
 *
 * Guarantees: the caller's terminal is put back to the modes it had by `close()`, which `run.ts`
 * calls in a `finally`, and by a process `exit` handler as well; no read of the caller's terminal
 * is made after `stopInput()`; the master and slave are close-on-exec in this process.
 *
 * libc through bun:ffi, bound on first use in a table of its own (the launcher's table,
 * libc.ts, stays small). Linux with glibc, x86-64 or arm64 (the same ioctl numbers and flags).
 */
import { dlopen, FFIType, ptr, read } from "bun:ffi";
import { isatty } from "node:tty";
import { LibcError, errnoName, Errno } from "./libc.ts";

const { i32, u64, i64, ptr: P } = FFIType;

const SYMBOLS = {
  __errno_location: { args: [], returns: P },
  posix_openpt: { args: [i32], returns: i32 },
  grantpt: { args: [i32], returns: i32 },
  unlockpt: { args: [i32], returns: i32 },
  ptsname_r: { args: [i32, P, u64], returns: i32 },
  open: { args: [P, i32], returns: i32 },
  close: { args: [i32], returns: i32 },
  read: { args: [i32, P, u64], returns: i64 },
  write: { args: [i32, P, u64], returns: i64 },
  poll: { args: [P, u64, i32], returns: i32 },
  // variadic in C: a pointer passes in the same register as an integer on x86-64 and arm64
  ioctl: { args: [i32, u64, P], returns: i32 },
  tcgetattr: { args: [i32, P], returns: i32 },
  tcsetattr: { args: [i32, i32, P], returns: i32 },
  cfmakeraw: { args: [P], returns: FFIType.void },
  // variadic in C; an integer argument passes in the same register
  fcntl: { args: [i32, i32, u64], returns: i32 },
  tcgetpgrp: { args: [i32], returns: i32 },
  getpgrp: { args: [], returns: i32 },
} as const;

type Symbols = ReturnType<typeof dlopen<typeof SYMBOLS>>["symbols"];
let opened: Symbols | null = null;

function libc(): Symbols {
  if (opened !== null) return opened;
  if (process.platform !== "linux") throw new LibcError("libc_unavailable", `libc: not available on ${process.platform} (Linux with glibc only)`);
  try {
    opened = dlopen("libc.so.6", SYMBOLS).symbols;
  } catch (e) {
    throw new LibcError("libc_unavailable", "libc: cannot open libc.so.6 (Linux with glibc only)", 0, { cause: e });
  }
  return opened;
}

function errno(): number {
  const where = libc().__errno_location();
  return where === null ? 0 : read.i32(where, 0);
}

function check(r: number, what: string): number {
  if (r >= 0) return r;
  const e = errno();
  throw new LibcError("libc_failed", `libc: ${what} failed: ${errnoName(e)}`, e);
}

// asm-generic values, the same on x86-64 and arm64
const O_RDWR = 0o2;
const O_NOCTTY = 0o400;
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
const TIOCGWINSZ = 0x5413;
const TIOCSWINSZ = 0x5414;
const TCSANOW = 0;
const TCSADRAIN = 1;
const POLLIN = 0x1;
const POLLOUT = 0x4;
/** glibc's struct termios is 60 bytes; room to spare. */
const TERMIOS_BYTES = 64;
const WINSIZE_BYTES = 8;

const CHUNK = 64 * 1024;
/** Reads of each side per tick, so a flood from one side cannot hold the loop. */
const READS_PER_TICK = 16;
export const RELAY_TICK_MS = 5;
/** After the command ends: how long the master may stay quiet before it is closed, and the most the drain takes. */
export const DRAIN_QUIET_MS = 50;
export const DRAIN_MAX_MS = 2000;

/** A terminal's modes, as tcgetattr gives them. */
function getAttr(fd: number): Uint8Array {
  const t = new Uint8Array(TERMIOS_BYTES);
  check(libc().tcgetattr(fd, ptr(t)), `tcgetattr(${fd})`);
  return t;
}

function getWinsize(fd: number): Uint8Array | null {
  const w = new Uint8Array(WINSIZE_BYTES);
  return libc().ioctl(fd, TIOCGWINSZ, ptr(w)) < 0 ? null : w;
}

/** poll(2) of `fds` with `events` each, timeout 0: the revents, in order. */
function pollNow(fds: readonly number[], events: readonly number[]): number[] {
  const buf = new Int32Array(fds.length * 2);
  const shorts = new Int16Array(buf.buffer);
  fds.forEach((fd, i) => {
    buf[i * 2] = fd;
    shorts[i * 4 + 2] = events[i]!;
  });
  const r = libc().poll(ptr(buf), fds.length, 0);
  if (r < 0) {
    const e = errno();
    if (e === Errno.EINTR || e === Errno.EAGAIN) return fds.map(() => 0);
    throw new LibcError("libc_failed", `libc: poll failed: ${errnoName(e)}`, e);
  }
  return fds.map((_, i) => shorts[i * 4 + 3]!);
}

/** read(2): bytes, 0 at end of file, or -errno. */
function readFd(fd: number, buf: Uint8Array): number {
  const n = Number(libc().read(fd, ptr(buf), buf.length));
  return n >= 0 ? n : -errno();
}

/** write(2): bytes written, or -errno. */
function writeFd(fd: number, buf: Uint8Array, offset: number): number {
  const n = Number(libc().write(fd, ptr(buf, offset), buf.length - offset));
  return n >= 0 ? n : -errno();
}

/** Writes all of `bytes` to a blocking descriptor (the caller's terminal); false when it failed. */
function writeAll(fd: number, bytes: Uint8Array): boolean {
  for (let off = 0; off < bytes.length; ) {
    const n = writeFd(fd, bytes, off);
    if (n === -Errno.EINTR) continue;
    if (n === -Errno.EAGAIN) {
      // a caller's terminal someone set non-blocking: wait for room
      pollWait(fd, POLLOUT);
      continue;
    }
    if (n <= 0) return false;
    off += n;
  }
  return true;
}

function pollWait(fd: number, events: number): void {
  const buf = new Int32Array(2);
  const shorts = new Int16Array(buf.buffer);
  buf[0] = fd;
  shorts[2] = events;
  libc().poll(ptr(buf), 1, 100);
}

/** A new pseudo-terminal: its master and its slave, both close-on-exec, neither a controlling terminal of this process. */
export function openPseudoTerminal(): { master: number; slave: number } {
  const master = check(libc().posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC), "posix_openpt");
  try {
    check(libc().grantpt(master), "grantpt");
    check(libc().unlockpt(master), "unlockpt");
    const name = new Uint8Array(128);
    const r = libc().ptsname_r(master, ptr(name), name.length);
    if (r !== 0) throw new LibcError("libc_failed", `libc: ptsname_r failed: ${errnoName(r)}`, r);
    return { master, slave: check(libc().open(ptr(name), O_RDWR | O_NOCTTY | O_CLOEXEC), "open(the pty's slave)") };
  } catch (e) {
    libc().close(master);
    throw e;
  }
}

/** Whether descriptor `fd` is a terminal. */
export function isTerminal(fd: number): boolean {
  try {
    return isatty(fd);
  } catch {
    return false;
  }
}

/**
 * The run's own terminal. `open()` makes it (stdin must be a terminal); the caller passes `slave`
 * to the command for each of descriptors 0, 1, 2 that `useSlave` says, then calls `closeSlave()`,
 * `start()`, and when the command has ended `finish()`; `close()` always, in a `finally`.
 */
export class RunTerminal {
  /** The caller's terminal modes before the run; put back by close(). */
  private readonly saved: Uint8Array;
  private raw = false;
  private masterFd: number;
  private slaveFd: number;
  /** Where the command's terminal output goes: the caller's stdout, else stderr, else stdin, if a terminal. */
  private readonly out: number;
  /** The caller's descriptor whose terminal the modes and window size are taken from: the first of 0, 1, 2 that is one. */
  private readonly termFd: number;
  private timer: ReturnType<typeof setInterval> | null = null;
  private inputOpen = true;
  private masterOpen = true;
  private pending: Uint8Array | null = null;
  private pendingOff = 0;
  private readonly buf = new Uint8Array(CHUNK);
  private readonly onWinch = () => this.copyWindowSize();
  private readonly onExit = () => this.close();
  private closed = false;
  /** Which of the caller's 0, 1, 2 are terminals, and so get the slave. */
  readonly useSlave: readonly [boolean, boolean, boolean];

  private constructor(master: number, slave: number, saved: Uint8Array, useSlave: readonly [boolean, boolean, boolean], termFd: number) {
    this.masterFd = master;
    this.slaveFd = slave;
    this.saved = saved;
    this.useSlave = useSlave;
    this.termFd = termFd;
    this.out = useSlave[1] ? 1 : useSlave[2] ? 2 : 0;
  }

  /**
   * A new pseudo-terminal with the caller's terminal's modes and window size, or null when none of
   * stdin, stdout and stderr is a terminal (nothing changes then). Throws LibcError when one cannot
   * be made.
   */
  static open(): RunTerminal | null {
    const useSlave = [isTerminal(0), isTerminal(1), isTerminal(2)] as const;
    const termFd = useSlave.indexOf(true);
    if (termFd < 0) return null;
    const saved = getAttr(termFd);
    const { master, slave } = openPseudoTerminal();
    try {
      // The slave starts as the caller's terminal was: echo, line editing, the control characters.
      check(libc().tcsetattr(slave, TCSANOW, ptr(saved)), "tcsetattr(the pty's slave)");
      const size = getWinsize(termFd);
      if (size !== null) libc().ioctl(master, TIOCSWINSZ, ptr(size));
      // Ours alone, so non-blocking is safe: a command that does not read cannot stall the relay.
      check(setFlags(master, O_NONBLOCK), "fcntl(master, O_NONBLOCK)");
    } catch (e) {
      libc().close(slave);
      libc().close(master);
      throw e;
    }
    return new RunTerminal(master, slave, saved, useSlave, termFd);
  }

  get slave(): number {
    return this.slaveFd;
  }

  /**
   * Whether the slave is the command's stdin, and so should be its controlling terminal (job
   * control, /dev/tty, Ctrl-C through it). Without it only output is relayed: Ctrl-C at the
   * caller's terminal reaches `tidegate run`, which passes it on as it does without a terminal.
   */
  get controlling(): boolean {
    return this.useSlave[0];
  }

  /** Descriptor `n` (0, 1, 2) as the command should have it: the slave, or the caller's own. */
  descriptor(n: 0 | 1 | 2): number {
    return this.useSlave[n] ? this.slaveFd : n;
  }

  /** This process's copy of the slave closed (once the command has its own): EIO on the master then means the command and its leftovers are all gone. */
  closeSlave(): void {
    if (this.slaveFd >= 0) libc().close(this.slaveFd);
    this.slaveFd = -1;
  }

  /**
   * The caller's terminal in raw mode when stdin is that terminal, and the relay started. Run in
   * the background of the caller's terminal (a job of its shell not in the foreground), the
   * terminal is neither changed nor read, as the kernel would stop this process for either
   * (SIGTTOU, SIGTTIN): the command's output is relayed, and its terminal gets no input. With
   * stdin not a terminal it is never changed nor read either.
   */
  start(): void {
    process.on("exit", this.onExit);
    if (!this.controlling || this.inBackground()) this.inputOpen = false;
    else {
      const raw = new Uint8Array(this.saved);
      libc().cfmakeraw(ptr(raw));
      check(libc().tcsetattr(0, TCSADRAIN, ptr(raw)), "tcsetattr(stdin, raw)");
      this.raw = true;
    }
    process.on("SIGWINCH", this.onWinch);
    this.timer = setInterval(() => this.tick(), RELAY_TICK_MS);
  }

  /** No further read of the caller's terminal. */
  stopInput(): void {
    this.inputOpen = false;
  }

  /**
   * The command has ended: stops reading the caller's terminal, passes on what is left on the
   * master until it reads EIO (no slave open anywhere), stays quiet DRAIN_QUIET_MS, or DRAIN_MAX_MS
   * have passed (a leftover still writing), then closes the master and puts the caller's modes back.
   */
  async finish(): Promise<void> {
    this.stopInput();
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    const started = Date.now();
    let lastData = Date.now();
    while (this.masterOpen && Date.now() - started < DRAIN_MAX_MS && Date.now() - lastData < DRAIN_QUIET_MS) {
      const got = this.readMaster();
      if (got > 0) lastData = Date.now();
      else if (got === 0) await Bun.sleep(RELAY_TICK_MS);
    }
    this.close();
  }

  /** Closes the master and the slave (if still open) and puts the caller's terminal modes back. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.inputOpen = false;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    process.off("SIGWINCH", this.onWinch);
    process.off("exit", this.onExit);
    this.closeSlave();
    if (this.masterFd >= 0) libc().close(this.masterFd);
    this.masterFd = -1;
    this.masterOpen = false;
    if (this.raw) {
      this.raw = false;
      // TCSADRAIN: what the relay wrote is shown first; what the caller typed after the command ended stays for whoever reads next.
      for (let i = 0; i < 3 && libc().tcsetattr(0, TCSADRAIN, ptr(this.saved)) < 0 && errno() === Errno.EINTR; i++);
    }
  }

  /** Stdin is this process's controlling terminal and another process group is in its foreground. */
  private inBackground(): boolean {
    const fg = libc().tcgetpgrp(0);
    return fg >= 0 && fg !== libc().getpgrp();
  }

  private copyWindowSize(): void {
    if (this.masterFd < 0) return;
    const size = getWinsize(this.termFd);
    if (size !== null) libc().ioctl(this.masterFd, TIOCSWINSZ, ptr(size));
  }

  private tick(): void {
    if (this.closed) return;
    try {
      if (this.inputOpen) this.readInput();
      this.flushPending();
      for (let i = 0; i < READS_PER_TICK && this.masterOpen; i++) if (this.readMaster() <= 0) break;
    } catch {
      // a failure of the relay must not leave the terminal raw: the run goes on without it
      this.stopInput();
    }
  }

  /** Caller's terminal -> master, while the master takes it. */
  private readInput(): void {
    for (let i = 0; i < READS_PER_TICK && this.pending === null && this.inputOpen; i++) {
      const [rev] = pollNow([0], [POLLIN]);
      if (rev === 0) return;
      const n = readFd(0, this.buf);
      if (n === -Errno.EINTR || n === -Errno.EAGAIN) return;
      if (n <= 0) {
        // end of file or a hang-up of the caller's terminal: nothing more to pass on
        this.inputOpen = false;
        return;
      }
      this.pending = this.buf.slice(0, n);
      this.pendingOff = 0;
      this.flushPending();
    }
  }

  private flushPending(): void {
    while (this.pending !== null && this.masterOpen) {
      const n = writeFd(this.masterFd, this.pending, this.pendingOff);
      if (n === -Errno.EAGAIN || n === -Errno.EINTR) return;
      if (n < 0) {
        this.pending = null;
        return;
      }
      this.pendingOff += n;
      if (this.pendingOff >= this.pending.length) this.pending = null;
    }
  }

  /** One read of the master to the caller's terminal: bytes passed, 0 for none now, -1 when the master is done (EIO: no slave open). */
  private readMaster(): number {
    if (!this.masterOpen) return -1;
    const n = readFd(this.masterFd, this.buf);
    if (n === -Errno.EAGAIN || n === -Errno.EINTR) return 0;
    if (n <= 0) {
      this.masterOpen = false;
      return -1;
    }
    writeAll(this.out, this.buf.subarray(0, n));
    return n;
  }
}

const F_GETFL = 3;
const F_SETFL = 4;

function setFlags(fd: number, add: number): number {
  const flags = libc().fcntl(fd, F_GETFL, 0);
  return flags < 0 ? flags : libc().fcntl(fd, F_SETFL, flags | add);
}
