/**
 * The kernel's own view of a process, read by bpf/task-print.bpf.o's tg_task_print in one
 * bpf(BPF_PROG_TEST_RUN) call: its start time, the inode of its executable, and its effective
 * uid and gid. Attestation compares these to know that a pid still names the process it attested
 * (src/attest/attestation.ts); read from /proc they cost three files and five system calls on
 * every connection.
 *
 * Guarantees:
 * - `print(pid)` returns a print only when the kernel found a task with that pid (in the initial
 *   pid namespace, the one capture records pids in) that has an executable; for anything else (no
 *   such task, a kernel thread, an exited process not yet reaped) it returns null, and the caller
 *   reads /proc, which gives each refusal its own reason. A failed call throws (`bpf_run`).
 * - The start time is in clock ticks after boot plus this process's time-namespace offset, the
 *   unit of field 22 of /proc/PID/stat and of CaptureRecord.startTime, converted by the same
 *   function (startTicks).
 * - `exe` is "k<dev>:<ino high>:<ino low>" (dev the kernel's 32-bit dev_t): it never equals the
 *   "<dev>:<ino>" of a stat(2), so prints from the two sources never compare equal by accident.
 * - `owner` is "<euid>:<egid>", the ids /proc/PID is owned by.
 * - The context buffer is one per printer; calls are synchronous, so they cannot interleave.
 */
import { readFileSync } from "node:fs";
import { ptr } from "bun:ffi";
import type { Fingerprint } from "../attest/attestation.ts";
import { parseBootOffset, startTicks } from "../attest/proc-text.ts";
import { closeFd, dupFd } from "./bpf-fds.ts";
import { openObject } from "./bpf-object.ts";
import { BpfError } from "./errors.ts";
import { errno, bpfFailure, libs } from "./ffi-call.ts";
import { taskPrintObject } from "./object.ts";

/** struct tg_task_print of bpf/task-print.bpf.c: each member's byte offset and size. */
export const TASK_PRINT_LAYOUT = {
  size: 40,
  members: { pid: { offset: 0, size: 4 }, status: { offset: 4, size: 4 }, start_ns: { offset: 8, size: 8 }, dev: { offset: 16, size: 8 }, ino: { offset: 24, size: 8 }, euid: { offset: 32, size: 4 }, egid: { offset: 36, size: 4 } },
} as const;

/** tg_task_print's status values. */
export const TG_PRINT = { OK: 0, NO_TASK: 1, NO_EXE: 2 } as const;

const SYS_BPF = process.arch === "arm64" ? 280 : 321;
const BPF_PROG_TEST_RUN = 10;
/** union bpf_attr's `test` member, up to batch_size (76 bytes), rounded up. */
const ATTR_SIZE = 80;
const L = TASK_PRINT_LAYOUT.members;

/**
 * What /proc adds to the start times it shows this process (its time namespace's boot-time
 * offset; 0 in the initial one): the kernel's start times are converted with it so they compare
 * with /proc's. A file that cannot be read is no offset (kernels before 5.6 have no time
 * namespaces).
 */
export function bootOffsetNs(): bigint {
  let text: string;
  try {
    text = readFileSync("/proc/self/timens_offsets", "utf8");
  } catch {
    return 0n;
  }
  return parseBootOffset(text, "/proc/self/timens_offsets");
}

export class TaskPrinter {
  #fd: number;
  readonly #bootOffset: bigint;
  // Both buffers own their memory outside the collector's heap (an ArrayBuffer made first), so
  // the context's address written into the attribute stays valid for the printer's life.
  readonly #ctx = new DataView(new ArrayBuffer(TASK_PRINT_LAYOUT.size));
  readonly #attr = new Uint8Array(new ArrayBuffer(ATTR_SIZE));
  /** libc's syscall(2), looked up once: print runs on every new connection. */
  readonly #syscall = libs().libc.syscall;

  private constructor(fd: number, bootOffset: bigint) {
    this.#fd = fd;
    this.#bootOffset = bootOffset;
    const attr = new DataView(this.#attr.buffer);
    attr.setUint32(0, fd, true); // prog_fd
    attr.setUint32(40, TASK_PRINT_LAYOUT.size, true); // ctx_size_in
    attr.setBigUint64(48, BigInt(ptr(new Uint8Array(this.#ctx.buffer))), true); // ctx_in
  }

  /**
   * Loads tg_task_print. Throws a BpfError when the object cannot be read or the kernel refuses
   * it (a kernel without BPF_PROG_TYPE_SYSCALL or the task kfuncs for it): the caller then reads /proc.
   */
  static async open(): Promise<TaskPrinter> {
    const obj = openObject(await taskPrintObject(), "task-print");
    try {
      obj.load();
      return new TaskPrinter(dupFd(obj.program("tg_task_print").fd()), bootOffsetNs());
    } finally {
      obj.close();
    }
  }

  /** The print of `pid`, or null when the kernel has no task with an executable for it. */
  print(pid: number): Fingerprint | null {
    if (this.#fd < 0) throw new BpfError("bpf_closed", "tg_task_print", 0, "bpf: tg_task_print used after close");
    const c = this.#ctx;
    c.setInt32(L.pid.offset, pid, true);
    c.setInt32(L.status.offset, -1, true);
    const ret = Number(this.#syscall(SYS_BPF, BPF_PROG_TEST_RUN, this.#attr, ATTR_SIZE));
    if (ret !== 0) throw bpfFailure("bpf_run", "bpf(BPF_PROG_TEST_RUN)", errno() || 22, `of tg_task_print for pid ${pid}`);
    const status = c.getInt32(L.status.offset, true);
    if (status !== TG_PRINT.OK) {
      if (status === TG_PRINT.NO_TASK || status === TG_PRINT.NO_EXE) return null;
      throw new BpfError("bpf_run", "tg_task_print", 0, `bpf: tg_task_print for pid ${pid} returned status ${status}`);
    }
    const startTime = startTicks(c.getBigUint64(L.start_ns.offset, true), this.#bootOffset);
    if (startTime === null) return null;
    return {
      startTime,
      exe: `k${c.getUint32(L.dev.offset, true)}:${c.getUint32(L.ino.offset + 4, true)}:${c.getUint32(L.ino.offset, true)}`,
      owner: `${c.getUint32(L.euid.offset, true)}:${c.getUint32(L.egid.offset, true)}`,
    };
  }

  close(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    closeFd(fd);
  }
}
