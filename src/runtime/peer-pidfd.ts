/**
 * The process at the other end of a Unix stream socket, as the kernel holds it: SO_PEERPIDFD
 * (unix(7), socket(7); Linux 6.5) gives a pidfd (pidfd_open(2)) of the process that called
 * connect(), taken by the kernel then, not looked up by number later; `pidfdPid` says which pid
 * that process holds now. Two layers (../shared/STYLE.md, point 10): the raw table is
 * unix-fds.ts's `sockets()`; these wrappers throw `UnixFdError` carrying errno.
 *
 * Guaranteed: a pidfd returned here is close-on-exec (the kernel makes every pidfd so) and the
 * caller owns it. A kernel without the option (before 6.5: ENOPROTOOPT) gives null, never a
 * made-up answer; any other failure throws.
 */
import { readFileSync } from "node:fs";
import { ptr } from "bun:ffi";
import { errno, Errno, errnoName } from "./libc.ts";
import { sockets, UnixFdError } from "./unix-fds.ts";

const SOL_SOCKET = 1;
/** include/uapi/asm-generic/socket.h, the value x86-64 and arm64 use (Linux 6.5; older headers lack it). */
const SO_PEERPIDFD = 77;

/**
 * A pidfd of the process that connected the peer end of `fd`; null where the kernel has no
 * SO_PEERPIDFD (ENOPROTOOPT). A peer already reaped fails (ESRCH or EINVAL) on kernels that give no
 * pidfd of a reaped process; later kernels give one whose `pidfdPid` is -1.
 */
export function peerPidfd(fd: number): number | null {
  const out = new Int32Array(1);
  const len = new Uint32Array([4]);
  for (;;) {
    const r = sockets().getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, ptr(out), ptr(len));
    if (r >= 0) break;
    const e = errno();
    if (e === Errno.EINTR) continue;
    if (e === Errno.ENOPROTOOPT) return null;
    throw new UnixFdError("unix_fds_failed", `unix sockets: getsockopt(SO_PEERPIDFD) of descriptor ${fd} failed: ${errnoName(e)}`, e);
  }
  if (len[0] !== 4 || out[0]! < 0) throw new UnixFdError("unix_fds_failed", `unix sockets: SO_PEERPIDFD returned ${len[0]} bytes (${out[0]}), want a 4-byte descriptor`);
  return out[0]!;
}

/**
 * The pid the pidfd's process holds now, as this process's /proc names it (the `Pid:` line of
 * /proc/self/fdinfo/PIDFD, proc_pid_fdinfo(5)): -1 once the process has been reaped (the moment its
 * pid is freed for reuse: a zombie keeps its pid and shows it), 0 when it is in a pid namespace
 * this /proc does not see. `unix_fds_bad_argument` when `pidfd` is not a pidfd.
 */
export function pidfdPid(pidfd: number, fdinfo = "/proc/self/fdinfo"): number {
  let text: string;
  try {
    text = readFileSync(`${fdinfo}/${pidfd}`, "utf8");
  } catch (e) {
    const code = (e as { code?: string }).code;
    const n = code === "ENOENT" ? Errno.EBADF : 0;
    throw new UnixFdError("unix_fds_failed", `unix sockets: cannot read the fdinfo of descriptor ${pidfd}: ${code ?? String(e)}`, n, { cause: e });
  }
  const m = /^Pid:\s*(-1|[0-9]{1,10})$/m.exec(text);
  if (m === null) throw new UnixFdError("unix_fds_bad_argument", `unix sockets: descriptor ${pidfd} is not a pidfd (its fdinfo has no Pid: line)`);
  return Number(m[1]);
}
