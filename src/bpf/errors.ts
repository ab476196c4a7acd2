/**
 * Errors of the eBPF layer. Every failure of a kernel or libbpf call carries the operation
 * (`op`, e.g. "bpf_obj_get") and the positive errno it failed with (0 when no call failed, e.g. a
 * size check or a value that cannot be encoded). libbpf's own codes (4000 and up: LIBBPF_ERRNO__*)
 * pass through as they are. Codes:
 *
 * - `bpf_unavailable`: libz, libelf, libbpf or libc cannot be loaded, or the platform is not one
 *   the FFI layer supports.
 * - `bpf_open`: bpf_object__open_mem refused the object (not an ELF, bad BTF, bad map section).
 * - `bpf_load`: the kernel refused a map or program; the message ends with libbpf's log tail
 *   (the verifier's last lines when it printed any).
 * - `bpf_attach`: attaching a program to a cgroup failed (or the cgroup fd is bad).
 * - `bpf_pin`: pinning or unpinning under bpffs failed.
 * - `bpf_map`: a map operation failed, or a key/value has the wrong size, or a pinned map's sizes
 *   are not the ones asked for.
 * - `bpf_ringbuf`: creating, polling or consuming a ring buffer failed.
 * - `bpf_not_found`: no program or map of that name in the object, or nothing pinned at a path.
 * - `bpf_info`: bpf_obj_get_info_by_fd failed.
 * - `bpf_stats`: bpf_enable_stats failed.
 * - `bpf_mount`: bpffs could not be mounted.
 * - `bpf_run`: running a program with bpf(BPF_PROG_TEST_RUN) failed, or it returned a status
 *   the caller does not know.
 * - `bpf_closed`: a handle was used after close.
 * - `bpf_layout`: a value does not fit a struct of bpf/tidegate.h (too many port rules, a prefix
 *   longer than the address, a field out of range) or a buffer read back has the wrong size.
 */
import { TidegateError } from "../errors.ts";
import { Errno, errnoName as libcErrnoName } from "../runtime/libc.ts";

export type BpfErrorCode =
  | "bpf_unavailable"
  | "bpf_open"
  | "bpf_load"
  | "bpf_attach"
  | "bpf_pin"
  | "bpf_map"
  | "bpf_ringbuf"
  | "bpf_not_found"
  | "bpf_info"
  | "bpf_stats"
  | "bpf_mount"
  | "bpf_closed"
  | "bpf_run"
  | "bpf_layout";

export class BpfError extends TidegateError<BpfErrorCode> {
  /** Positive errno of the failed call, or 0 when no call failed. */
  readonly errno: number;
  /** The operation that failed: a libbpf or libc function name, or the encoder's name. */
  readonly op: string;

  constructor(code: BpfErrorCode, op: string, errno: number, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.op = op;
    this.errno = errno;
  }
}

/** libbpf's own error codes (libbpf.h, `enum libbpf_errno`), past the kernel's errno values. */
const LIBBPF_ERRNO_NAMES: Readonly<Record<number, string>> = {
  4000: "LIBBPF_ERRNO__LIBELF", 4001: "LIBBPF_ERRNO__FORMAT", 4002: "LIBBPF_ERRNO__KVERSION",
  4003: "LIBBPF_ERRNO__ENDIAN", 4004: "LIBBPF_ERRNO__INTERNAL", 4005: "LIBBPF_ERRNO__RELOC",
  4006: "LIBBPF_ERRNO__LOAD", 4007: "LIBBPF_ERRNO__VERIFY", 4008: "LIBBPF_ERRNO__PROG2BIG",
  4009: "LIBBPF_ERRNO__KVER", 4010: "LIBBPF_ERRNO__PROGTYPE", 4011: "LIBBPF_ERRNO__WRNGPID",
  4012: "LIBBPF_ERRNO__INVSEQ", 4013: "LIBBPF_ERRNO__NLPARSE",
};

/** "ENOENT" (the kernel's names, ../runtime/libc.ts), a libbpf code's name, or "errno 123". */
export function errnoName(errno: number): string {
  return LIBBPF_ERRNO_NAMES[errno] ?? libcErrnoName(errno);
}

export const ENOENT = Errno.ENOENT;
export const EINTR = Errno.EINTR;
