/**
 * Which process called run.sock, pinned at accept (docs/capture.md; docs/security-review.md, "PID
 * reuse in attestation"). SO_PEERCRED gives the pid the caller had at connect(); a caller that
 * exits before the agent reads /proc/PID could have its pid given to another process, and that
 * one read in its place. SO_PEERPIDFD (Linux 6.5) gives a pidfd of the process that connected,
 * which the kernel took at connect(), and that is what pins the reads to it.
 *
 * Why the pidfd's `Pid:` line (pidfdPid) and not pidfd_send_signal(pidfd, 0): a pid is held by one
 * process at a time, from fork until that process is reaped, and the kernel writes -1 in a pidfd's
 * fdinfo from the moment it is reaped (the moment its pid is freed for reuse). So the pidfd still
 * showing the caller's pid AFTER the /proc reads means that pid was the caller's all through them:
 * the reads were of the caller. The signal answers another question (may the agent signal it: it
 * also succeeds for a zombie, fails for a pidfd from another pid namespace, and names no pid) and
 * asks for a permission check that has nothing to do with it.
 *
 * Combining rule, fail closed (the first refusal wins), in this order:
 * 1. the pidfd is taken before anything of /proc/PID is read. No SO_PEERPIDFD (ENOPROTOOPT): the
 *    start time is read unpinned, as before 6.5 (the service logs that once). The peer already
 *    reaped (ESRCH, EINVAL): `run_caller_exited`. Any other failure: `run_caller_unverified`.
 * 2. the start time of /proc/PID/stat is read.
 * 3. the pidfd's pid is read again: -1 (reaped) is `run_caller_exited`; any other pid than
 *    SO_PEERCRED's (0: a pid namespace the agent's /proc does not see), or no answer, is
 *    `run_caller_unverified`.
 * 4. a start time that could not be read though the caller still held its pid: `run_caller_unverified`.
 * A refused pidfd is closed here; an accepted one is the caller's to close (with the connection).
 */
import { Errno } from "../runtime/libc.ts";

export type CallerRefusalCode = "run_caller_exited" | "run_caller_unverified";

/** What pinning reads (real ones in run-service.ts; tests inject theirs). */
export interface CallerLookups {
  /** SO_PEERPIDFD of the connection; null where the kernel has no such option. Throws an error carrying `errno` otherwise. */
  peerPidfd(): number | null;
  /** Field 22 of /proc/PID/stat; null when it cannot be read. */
  startTime(pid: number): number | null;
  /** The pid the pidfd's process holds now: -1 once reaped. Throws when it cannot tell. */
  pidfdPid(pidfd: number): number;
  close(pidfd: number): void;
}

export interface CallerRefusal {
  readonly ok: false;
  readonly code: CallerRefusalCode;
  readonly message: string;
}

export type CallerPin = { readonly ok: true; readonly startTime: number | null; readonly pidfd: number | null } | CallerRefusal;

const no = (code: CallerRefusalCode, message: string): CallerRefusal => ({ ok: false, code, message: `run: ${message}` });

function errnoOf(e: unknown): number {
  const n = (e as { errno?: unknown } | null)?.errno;
  return typeof n === "number" ? n : 0;
}

function detail(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The caller with SO_PEERCRED pid `pid`, its start time read while the pidfd held it (the rule above). */
export function pinCaller(pid: number, look: CallerLookups): CallerPin {
  let pidfd: number | null;
  try {
    pidfd = look.peerPidfd();
  } catch (e) {
    const n = errnoOf(e);
    if (n === Errno.ESRCH || n === Errno.EINVAL) return no("run_caller_exited", `the calling process (pid ${pid}) exited before its connection was accepted`);
    return no("run_caller_unverified", `cannot tell which process (pid ${pid}) connected: ${detail(e)}`);
  }
  if (pidfd === null) return { ok: true, startTime: look.startTime(pid), pidfd: null };
  const startTime = look.startTime(pid);
  const refused = confirmCaller(pid, pidfd, look, "before its connection was accepted");
  if (refused === null && startTime !== null) return { ok: true, startTime, pidfd };
  look.close(pidfd);
  return refused ?? no("run_caller_unverified", `cannot read the start time of the calling process (pid ${pid}), though it is still running`);
}

/**
 * Null while the pidfd's process still holds `pid` (so what was read of /proc/PID before this call
 * was of it); else the refusal. `when` ends the message ("while it was attested").
 */
export function confirmCaller(pid: number, pidfd: number, look: Pick<CallerLookups, "pidfdPid">, when: string): CallerRefusal | null {
  let now: number;
  try {
    now = look.pidfdPid(pidfd);
  } catch (e) {
    return no("run_caller_unverified", `cannot tell whether the calling process (pid ${pid}) still runs: ${detail(e)}`);
  }
  if (now === pid) return null;
  if (now === -1) return no("run_caller_exited", `the calling process (pid ${pid}) exited ${when}`);
  return no("run_caller_unverified", `the process that connected holds pid ${now}, not pid ${pid}`);
}
