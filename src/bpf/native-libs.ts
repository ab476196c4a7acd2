/**
 * Finds and loads the native libraries the eBPF layer needs: libz.so.1, libelf.so.1, libbpf.so.1
 * (in that order) and glibc's libc.so.6.
 *
 * - In a compiled binary, the three libraries are the copies embedded by scripts/build.ts
 *   (src/bpf/embedded-files.ts). Loading libz and libelf first makes libbpf's DT_NEEDED entries
 *   resolve to them by soname, so the binary needs no libbpf on the host (PLATFORM-NOTES).
 * - From source, they are the system's, found by soname the way the dynamic loader finds them
 *   (ld.so.cache, what `ldconfig -p` lists; on Debian /usr/lib/x86_64-linux-gnu).
 * - libc is always the process's own glibc.
 *
 * Loading happens once, on first use; a failure is remembered and thrown again (BpfError
 * bpf_unavailable, naming the library) so a host without the libraries fails closed every time.
 * Handles are never closed: libbpf's objects and callbacks live as long as the process.
 */
import { dlopen } from "bun:ffi";
import { EMBEDDED } from "./embedded-files.ts";
import { BpfError } from "./errors.ts";
import {
  LIBBPF_SYMBOLS,
  LIBC_SYMBOLS,
  LIBELF_SYMBOLS,
  LIBZ_SYMBOLS,
  type LibbpfSymbols,
  type LibcSymbols,
} from "./libbpf-symbols.ts";

export interface NativeLibs {
  readonly bpf: LibbpfSymbols;
  readonly libc: LibcSymbols;
  /** "embedded": the binary's own copies; "system": the host's. */
  readonly source: "embedded" | "system";
  /** What was passed to dlopen, in load order. */
  readonly paths: readonly string[];
}

/** Sonames in load order; scripts/build.ts embeds the same three. */
export const NATIVE_SONAMES = ["libz.so.1", "libelf.so.1", "libbpf.so.1"] as const;

let loaded: NativeLibs | null = null;
let failure: BpfError | null = null;

function open<T extends Record<string, import("bun:ffi").FFIFunction>>(path: string, soname: string, symbols: T) {
  try {
    return dlopen(path, symbols);
  } catch (e) {
    throw new BpfError("bpf_unavailable", "dlopen", 0, `bpf: cannot load ${soname} (${path}): ${(e as Error).message}`, { cause: e });
  }
}

function load(): NativeLibs {
  if (process.platform !== "linux" || (process.arch !== "x64" && process.arch !== "arm64")) {
    throw new BpfError("bpf_unavailable", "dlopen", 0, `bpf: eBPF needs linux on x64 or arm64, not ${process.platform}/${process.arch}`);
  }
  const paths = EMBEDDED === null ? [...NATIVE_SONAMES] : [EMBEDDED.libz, EMBEDDED.libelf, EMBEDDED.libbpf];
  const [libz, libelf, libbpf] = paths as [string, string, string];
  open(libz, "libz.so.1", LIBZ_SYMBOLS);
  open(libelf, "libelf.so.1", LIBELF_SYMBOLS);
  const bpf = open(libbpf, "libbpf.so.1", LIBBPF_SYMBOLS).symbols;
  const libc = open("libc.so.6", "libc.so.6", LIBC_SYMBOLS).symbols;
  return Object.freeze({ bpf, libc, source: EMBEDDED === null ? "system" : "embedded", paths: Object.freeze(paths) });
}

const VERSION_SYMBOLS = {
  libbpf_major_version: LIBBPF_SYMBOLS.libbpf_major_version,
  libbpf_minor_version: LIBBPF_SYMBOLS.libbpf_minor_version,
  libbpf_version_string: LIBBPF_SYMBOLS.libbpf_version_string,
} as const;

export type LibbpfVersionSymbols = Pick<LibbpfSymbols, keyof typeof VERSION_SYMBOLS>;

/**
 * libbpf's version functions alone, for `tidegate version`: the same libraries as nativeLibs()
 * (already loaded ones are reused), but binding three symbols instead of every one, since each
 * bound symbol costs a compiled trampoline and `version` should start fast.
 */
export function libbpfVersionSymbols(): { bpf: LibbpfVersionSymbols; source: NativeLibs["source"] } {
  if (loaded !== null) return loaded;
  if (process.platform !== "linux" || (process.arch !== "x64" && process.arch !== "arm64")) {
    throw new BpfError("bpf_unavailable", "dlopen", 0, `bpf: eBPF needs linux on x64 or arm64, not ${process.platform}/${process.arch}`);
  }
  const [libz, libelf, libbpf] = (EMBEDDED === null ? [...NATIVE_SONAMES] : [EMBEDDED.libz, EMBEDDED.libelf, EMBEDDED.libbpf]) as [string, string, string];
  open(libz, "libz.so.1", LIBZ_SYMBOLS);
  open(libelf, "libelf.so.1", LIBELF_SYMBOLS);
  return { bpf: open(libbpf, "libbpf.so.1", VERSION_SYMBOLS).symbols, source: EMBEDDED === null ? "system" : "embedded" };
}

/** The loaded libraries; throws BpfError bpf_unavailable when they cannot be loaded. */
export function nativeLibs(): NativeLibs {
  if (loaded !== null) return loaded;
  if (failure !== null) throw failure;
  try {
    loaded = load();
    return loaded;
  } catch (e) {
    failure = e instanceof BpfError ? e : new BpfError("bpf_unavailable", "dlopen", 0, `bpf: cannot load libbpf: ${String(e)}`, { cause: e });
    throw failure;
  }
}
