/**
 * BPF file descriptors outside an object: pins opened with bpf_obj_get, run-time statistics, and
 * what the kernel says about a program, map or link (bpf_obj_get_info_by_fd). Every fd returned
 * here is the caller's to close with closeFd; the kernel makes them close-on-exec.
 *
 * The info structs are read at the offsets of the kernel UAPI (linux/bpf.h), which only ever
 * grows at the end: struct bpf_prog_info (232 bytes in 6.x), bpf_map_info (88), bpf_link_info (48).
 */
import { readFileSync } from "node:fs";
import { BpfError, ENOENT } from "./errors.ts";
import { bpfFailure, checked, cString, errno, libs } from "./ffi-call.ts";

export interface ProgramInfo {
  readonly id: number;
  /** BPF_PROG_TYPE_* */
  readonly type: number;
  /** The kernel's copy of the name: at most 15 bytes of it. */
  readonly name: string;
  /** Both count only while statistics are on (enableStats). */
  readonly runTimeNs: bigint;
  readonly runCount: bigint;
}

export interface MapInfo {
  readonly id: number;
  /** BPF_MAP_TYPE_* */
  readonly type: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly flags: number;
  readonly name: string;
}

export interface LinkInfo {
  readonly id: number;
  /** BPF_LINK_TYPE_* (3: cgroup) */
  readonly type: number;
  readonly progId: number;
  /** For a cgroup link (type 3): the cgroup's id and the BPF_CGROUP_* attach type; else 0n and 0. */
  readonly cgroupId: bigint;
  readonly attachType: number;
}

export const BPF_LINK_TYPE_CGROUP = 3;
const BPF_STATS_RUN_TIME = 0;
const F_DUPFD_CLOEXEC = 1030;

function cName(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return new TextDecoder().decode(bytes.subarray(0, end < 0 ? bytes.length : end));
}

/** bpf_obj_get: an fd for what is pinned at `path`. Nothing there: bpf_not_found (errno 2). */
export function objGet(path: string): number {
  const ret = libs().bpf.bpf_obj_get(cString(path, "bpf_obj_get"));
  if (ret === -ENOENT) {
    throw new BpfError("bpf_not_found", "bpf_obj_get", ENOENT, `bpf: bpf_obj_get found nothing pinned at ${JSON.stringify(path)}`);
  }
  return checked(ret, "bpf_pin", "bpf_obj_get", `of ${JSON.stringify(path)}`);
}

/**
 * What kind of BPF object an fd refers to, from /proc/self/fdinfo (the kernel prints
 * "link_type:", "map_type:" or "prog_type:" there); "other" for anything else.
 */
export function fdKind(fd: number): "link" | "map" | "prog" | "other" {
  let text: string;
  try {
    text = readFileSync(`/proc/self/fdinfo/${fd}`, "utf8");
  } catch {
    return "other";
  }
  if (/^link_type:/m.test(text)) return "link";
  if (/^map_type:/m.test(text)) return "map";
  if (/^prog_type:/m.test(text)) return "prog";
  return "other";
}

/**
 * bpf_obj_get of a pinned link; something other than a link pinned there is refused (bpf_pin,
 * errno EINVAL). Check what it links with linkInfo before adopting it.
 */
export function openPinnedLink(path: string): number {
  const fd = objGet(path);
  if (fdKind(fd) !== "link") {
    closeFd(fd);
    throw new BpfError("bpf_pin", "bpf_obj_get", 22, `bpf: ${JSON.stringify(path)} is pinned but is not a link`);
  }
  return fd;
}

/** close(2). Closing an fd twice is a bug the caller owns; EBADF is thrown as bpf_map. */
export function closeFd(fd: number): void {
  if (libs().libc.close(fd) !== 0) throw bpfFailure("bpf_map", "close", errno(), `of fd ${fd}`);
}

/** fcntl(F_DUPFD_CLOEXEC): a second, close-on-exec fd for the same kernel object. */
export function dupFd(fd: number): number {
  const ret = libs().libc.fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (ret < 0) throw bpfFailure("bpf_map", "fcntl", errno(), `F_DUPFD_CLOEXEC of fd ${fd}`);
  return ret;
}

/** bpf_enable_stats(BPF_STATS_RUN_TIME): run time and count are gathered while the fd is open. */
export function enableStats(): number {
  return checked(libs().bpf.bpf_enable_stats(BPF_STATS_RUN_TIME), "bpf_stats", "bpf_enable_stats", "(BPF_STATS_RUN_TIME)");
}

function info(fd: number, size: number, what: string): DataView {
  const buf = new Uint8Array(size);
  const len = new Uint32Array([size]);
  checked(libs().bpf.bpf_obj_get_info_by_fd(fd, buf, len), "bpf_info", "bpf_obj_get_info_by_fd", `of ${what} fd ${fd}`);
  return new DataView(buf.buffer);
}

export function programInfo(fd: number): ProgramInfo {
  const v = info(fd, 232, "program");
  return Object.freeze({
    type: v.getUint32(0, true),
    id: v.getUint32(4, true),
    name: cName(new Uint8Array(v.buffer, 64, 16)),
    runTimeNs: v.getBigUint64(192, true),
    runCount: v.getBigUint64(200, true),
  });
}

export function mapInfo(fd: number): MapInfo {
  const v = info(fd, 88, "map");
  return Object.freeze({
    type: v.getUint32(0, true),
    id: v.getUint32(4, true),
    keySize: v.getUint32(8, true),
    valueSize: v.getUint32(12, true),
    maxEntries: v.getUint32(16, true),
    flags: v.getUint32(20, true),
    name: cName(new Uint8Array(v.buffer, 24, 16)),
  });
}

export function linkInfo(fd: number): LinkInfo {
  const v = info(fd, 48, "link");
  const type = v.getUint32(0, true);
  const cgroup = type === BPF_LINK_TYPE_CGROUP;
  return Object.freeze({
    type,
    id: v.getUint32(4, true),
    progId: v.getUint32(8, true),
    cgroupId: cgroup ? v.getBigUint64(16, true) : 0n,
    attachType: cgroup ? v.getUint32(24, true) : 0,
  });
}
