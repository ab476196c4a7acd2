/**
 * Attestation of one process: runs the attestors and binds their selectors to the process that
 * was asked about (issue 4, "PID reuse").
 *
 * Guarantees:
 * - The process is named by its pid AND its start time (field 22 of /proc/PID/stat). The start
 *   time is read before the attestors run and again after; so is the identity (device, inode) of
 *   the running executable. If either changed (the pid was reused, or the process exec'd another
 *   binary meanwhile) the attestation fails (`attest_process_changed`); if the process is gone,
 *   `attest_no_process`. A caller that captured the start time with the pid (at connect time)
 *   passes it, and a process with another start time is refused at once.
 * - An attestor's failure fails the whole attestation: no partial selector list is returned.
 * - Results are cached per pid, and a cached result is used only when the start time, the
 *   executable's (device, inode) and the owner of /proc/PID (the process's effective uid and gid:
 *   the directory keeps them even when the process is not dumpable, where the files in it show
 *   root) are all unchanged, and it is younger
 *   than `cacheTtlMs`. What a process can change without those moving (its supplementary groups,
 *   or being moved to another cgroup by root) is seen when the entry expires.
 * - With a `kernelPrint` (the agent's src/bpf/task-print.ts), the same three are read from the
 *   kernel's task in one call instead of from /proc: the start time in the same ticks, the
 *   executable's inode, the effective uid and gid. When it has no answer (no such task, no
 *   executable) /proc is read as without it, so every refusal keeps its reason. Its prints and
 *   /proc's never compare equal, so a cache entry made from one is never served on the other's.
 */
import type { ProcessRef, WorkloadAttestor } from "./attestor.ts";
import { AttestError } from "./errors.ts";
import { isGone, type ProcFs } from "./proc-fs.ts";
import { parseStartTime, startTimeFromBytes } from "./proc-text.ts";

/** /proc/PID/stat is about 300 bytes; one buffer serves every read (they are synchronous). */
const statBytes = new Uint8Array(4096);
const utf8 = new TextDecoder();

export interface Attested extends ProcessRef {
  readonly selectors: readonly string[];
  /** True when served from the per-pid cache. */
  readonly cached: boolean;
}

export interface AttestationOptions {
  readonly cacheTtlMs?: number;
  readonly cacheMax?: number;
  readonly now?: () => number;
  /** The process's print from the kernel, or null to read /proc instead (see above). */
  readonly kernelPrint?: (pid: number) => Fingerprint | null;
}

/** What says a pid still names the same process: start time, executable, owner. */
export interface Fingerprint {
  readonly startTime: number;
  readonly exe: string;
  readonly owner: string;
}

interface CacheEntry extends Fingerprint {
  readonly selectors: readonly string[];
  readonly at: number;
}

function samePrint(a: Fingerprint, b: Fingerprint): boolean {
  return a.startTime === b.startTime && a.exe === b.exe && a.owner === b.owner;
}

export class Attestation {
  readonly #fs: ProcFs;
  readonly #attestors: readonly WorkloadAttestor[];
  readonly #ttl: number;
  readonly #max: number;
  readonly #now: () => number;
  readonly #kernelPrint: ((pid: number) => Fingerprint | null) | undefined;
  readonly #cache = new Map<number, CacheEntry>();

  constructor(fs: ProcFs, attestors: readonly WorkloadAttestor[], opts: AttestationOptions = {}) {
    this.#fs = fs;
    this.#attestors = attestors;
    this.#ttl = opts.cacheTtlMs ?? 10_000;
    this.#max = opts.cacheMax ?? 4096;
    this.#now = opts.now ?? Date.now;
    this.#kernelPrint = opts.kernelPrint;
  }

  /** The start time of `pid` now (`attest_no_process` when there is no such process). */
  async startTime(pid: number): Promise<number> {
    return this.#startTime(pid);
  }

  #startTime(pid: number): number {
    checkPid(pid);
    const path = `/proc/${pid}/stat`;
    try {
      // The bytes are parsed in place; only a shape the fast parser does not take (or a file
      // longer than the buffer) is decoded and parsed as text.
      const n = this.#fs.readBytesSync(path, statBytes);
      if (n < statBytes.length) {
        const fast = startTimeFromBytes(statBytes, n);
        if (fast >= 0) return fast;
      }
      return parseStartTime(n < statBytes.length ? utf8.decode(statBytes.subarray(0, n)) : this.#fs.readTextSync(path), path);
    } catch (cause) {
      readFailed(pid, path, cause);
    }
  }

  /** /proc/PID/stat as text, with #startTime's errors (`attest_no_process` when it is gone). */
  #statText(pid: number): string {
    const path = `/proc/${pid}/stat`;
    try {
      return this.#fs.readTextSync(path);
    } catch (cause) {
      readFailed(pid, path, cause);
    }
  }

  /**
   * The selectors of process `pid`. With `expectedStartTime` (captured together with the pid),
   * a process that started at another time is refused (`attest_process_changed`).
   */
  async attest(pid: number, expectedStartTime?: number): Promise<Attested> {
    // The fingerprint is read synchronously: a cached hit is one call into the kernel (or three
    // reads of /proc, five system calls) and no await.
    const before = this.#fingerprint(pid);
    if (expectedStartTime !== undefined && before.startTime !== expectedStartTime) {
      throw changed(pid, `started at tick ${before.startTime}, not ${expectedStartTime}: the pid was reused`);
    }
    const now = this.#now();
    const hit = this.#cache.get(pid);
    if (hit !== undefined && samePrint(hit, before) && now - hit.at < this.#ttl) {
      return { pid, startTime: before.startTime, selectors: hit.selectors, cached: true };
    }
    const proc: ProcessRef = { pid, startTime: before.startTime };
    const selectors: string[] = [];
    try {
      for (const a of this.#attestors) selectors.push(...(await a.attest(proc)));
    } catch (cause) {
      this.#recheck(pid, before); // throws no_process / process_changed when that is why
      if (cause instanceof AttestError) throw cause;
      throw new AttestError("attest_failed", `attest: attestation of pid ${pid} failed: ${String((cause as Error)?.message ?? cause)}`, { cause });
    }
    this.#recheck(pid, before);
    const unique = [...new Set(selectors)];
    this.#cache.delete(pid);
    this.#cache.set(pid, { ...before, selectors: unique, at: now });
    while (this.#cache.size > this.#max) this.#cache.delete(this.#cache.keys().next().value as number);
    return { pid, startTime: before.startTime, selectors: unique, cached: false };
  }

  /** Drops the cached result of `pid` (e.g. when its connection closes). */
  forget(pid: number): void {
    this.#cache.delete(pid);
  }

  #recheck(pid: number, before: Fingerprint): void {
    const after = this.#fingerprint(pid);
    if (after.startTime !== before.startTime) throw changed(pid, `exited during attestation and the pid was reused`);
    if (after.exe !== before.exe) throw changed(pid, `executed another file during attestation`);
  }

  #fingerprint(pid: number): Fingerprint {
    if (this.#kernelPrint !== undefined) {
      checkPid(pid);
      const print = this.#kernelPrint(pid);
      if (print !== null) return print;
    }
    const startTime = this.#startTime(pid);
    try {
      const exe = this.#fs.fileIdSync(`/proc/${pid}/exe`);
      const dir = this.#fs.ownerSync(`/proc/${pid}`);
      return { startTime, exe, owner: `${dir.uid}:${dir.gid}` };
    } catch (cause) {
      const stat = this.#statText(pid); // throws attest_no_process when it is gone
      if (parseStartTime(stat, `/proc/${pid}/stat`) !== startTime) throw changed(pid, `exited and the pid was reused`);
      // An exited process not yet reaped keeps its /proc/PID/stat but has no executable any more.
      if (exitedState(stat)) throw new AttestError("attest_no_process", `attest: pid ${pid} has exited`, { cause });
      if (isGone(cause)) throw new AttestError("attest_exe_unreadable", `attest: pid ${pid} has no executable (a kernel thread?)`, { cause });
      throw new AttestError("attest_exe_unreadable", `attest: cannot resolve the executable of pid ${pid}`, { cause });
    }
  }
}

/** The state of /proc/PID/stat (field 3, after the last ")") says the process has exited: zombie or dead. */
function exitedState(stat: string): boolean {
  const close = stat.lastIndexOf(")");
  const state = close < 0 ? "" : stat.slice(close + 1).trimStart().charAt(0);
  return state === "Z" || state === "X" || state === "x";
}

/** A failed read of /proc/PID/stat: the process is gone (`attest_no_process`), or the read failed. */
function readFailed(pid: number, path: string, cause: unknown): never {
  if (cause instanceof AttestError) throw cause;
  if (isGone(cause)) throw new AttestError("attest_no_process", `attest: no process with pid ${pid}`, { cause });
  throw new AttestError("attest_failed", `attest: cannot read ${path}`, { cause });
}

function changed(pid: number, why: string): AttestError {
  return new AttestError("attest_process_changed", `attest: pid ${pid} ${why}`);
}

function checkPid(pid: number): void {
  if (!Number.isSafeInteger(pid) || pid <= 0 || pid > 4_194_304) throw new AttestError("attest_bad_pid", `attest: ${JSON.stringify(pid)} is not a pid`);
}
