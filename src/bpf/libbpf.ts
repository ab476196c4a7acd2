/**
 * libbpf through bun:ffi, the typed layer (STYLE.md point 10): every failure is a BpfError with
 * the failed operation and errno; handles release their kernel objects on close/dispose. The raw
 * symbol table is src/bpf/libbpf-symbols.ts; the libraries are found by src/bpf/native-libs.ts.
 *
 * This file is the one callers import; the pieces live in files of their own:
 * bpf-object.ts (objects, programs, links, object maps), map-handle.ts (map reads and writes),
 * ring-buffer.ts, bpf-fds.ts (pins, info, statistics), bpffs.ts (mounting bpffs), libbpf-info.ts
 * (which libbpf, for `tidegate version`).
 */
export { BpfError, type BpfErrorCode } from "./errors.ts";
export { libbpfVersion, openObject, type BpfLink, type BpfMap, type BpfObject, type BpfProgram } from "./bpf-object.ts";
export { MapHandle } from "./map-handle.ts";
export { RingBuffer } from "./ring-buffer.ts";
export {
  BPF_LINK_TYPE_CGROUP,
  closeFd,
  dupFd,
  enableStats,
  fdKind,
  linkInfo,
  mapInfo,
  objGet,
  openPinnedLink,
  programInfo,
  type LinkInfo,
  type MapInfo,
  type ProgramInfo,
} from "./bpf-fds.ts";
export { bpffsMounts, mountBpffsIfNeeded } from "./bpffs.ts";
export { setLibbpfLogSink } from "./ffi-call.ts";
export { nativeLibs, type NativeLibs } from "./native-libs.ts";
export { libbpfInfo, type LibbpfInfo } from "./libbpf-info.ts";
