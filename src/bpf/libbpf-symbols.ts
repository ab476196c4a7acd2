/**
 * The raw FFI symbol tables (first layer): the C signatures of the libbpf 1.x and libc functions
 * tidegate calls, and nothing else. Nothing here checks a result; src/bpf/libbpf.ts (the second
 * layer) turns every failure into a BpfError.
 *
 * libbpf 1.x conventions relied on (libbpf.h, "libbpf 1.0 mode" is the only mode of 1.x):
 * - functions returning int return a negative errno on failure (and also set errno);
 * - functions returning a pointer return NULL on failure and set errno.
 * Pointer arguments typed "ptr" take a TypedArray (Bun passes its data pointer for the call's
 * duration) or an address; callbacks are JSCallback pointers.
 */
import type { FFIFunction, Library } from "bun:ffi";

type SymbolTable = Record<string, FFIFunction>;

/** libz and libelf are loaded only so libbpf.so.1's DT_NEEDED entries resolve to them; one symbol each proves the load. */
export const LIBZ_SYMBOLS = {
  zlibVersion: { args: [], returns: "cstring" },
} as const satisfies SymbolTable;

export const LIBELF_SYMBOLS = {
  elf_version: { args: ["u32"], returns: "u32" },
} as const satisfies SymbolTable;

export const LIBBPF_SYMBOLS = {
  libbpf_major_version: { args: [], returns: "u32" },
  libbpf_minor_version: { args: [], returns: "u32" },
  /** "v1.1": what `tidegate version` shows. */
  libbpf_version_string: { args: [], returns: "cstring" },
  /** libbpf_print_fn_t libbpf_set_print(libbpf_print_fn_t fn); fn(level, fmt, va_list) */
  libbpf_set_print: { args: ["ptr"], returns: "ptr" },
  libbpf_strerror: { args: ["i32", "ptr", "usize"], returns: "i32" },
  libbpf_num_possible_cpus: { args: [], returns: "i32" },

  bpf_object__open_mem: { args: ["ptr", "usize", "ptr"], returns: "ptr" },
  bpf_object__load: { args: ["ptr"], returns: "i32" },
  bpf_object__close: { args: ["ptr"], returns: "void" },
  bpf_object__find_program_by_name: { args: ["ptr", "ptr"], returns: "ptr" },
  bpf_object__find_map_by_name: { args: ["ptr", "ptr"], returns: "ptr" },

  bpf_program__fd: { args: ["ptr"], returns: "i32" },
  bpf_program__section_name: { args: ["ptr"], returns: "cstring" },
  bpf_program__attach_cgroup: { args: ["ptr", "i32"], returns: "ptr" },

  bpf_link__fd: { args: ["ptr"], returns: "i32" },
  bpf_link__pin: { args: ["ptr", "ptr"], returns: "i32" },
  bpf_link__unpin: { args: ["ptr"], returns: "i32" },
  bpf_link__destroy: { args: ["ptr"], returns: "i32" },

  bpf_map__fd: { args: ["ptr"], returns: "i32" },
  bpf_map__type: { args: ["ptr"], returns: "u32" },
  bpf_map__key_size: { args: ["ptr"], returns: "u32" },
  bpf_map__value_size: { args: ["ptr"], returns: "u32" },
  bpf_map__max_entries: { args: ["ptr"], returns: "u32" },
  bpf_map__pin: { args: ["ptr", "ptr"], returns: "i32" },
  bpf_map__unpin: { args: ["ptr", "ptr"], returns: "i32" },

  bpf_obj_get: { args: ["ptr"], returns: "i32" },
  bpf_obj_get_info_by_fd: { args: ["i32", "ptr", "ptr"], returns: "i32" },
  bpf_enable_stats: { args: ["u32"], returns: "i32" },
  bpf_map_lookup_elem: { args: ["i32", "ptr", "ptr"], returns: "i32" },
  bpf_map_update_elem: { args: ["i32", "ptr", "ptr", "u64"], returns: "i32" },
  bpf_map_delete_elem: { args: ["i32", "ptr"], returns: "i32" },
  bpf_map_lookup_and_delete_elem: { args: ["i32", "ptr", "ptr"], returns: "i32" },
  bpf_map_get_next_key: { args: ["i32", "ptr", "ptr"], returns: "i32" },

  /** struct ring_buffer *ring_buffer__new(int map_fd, ring_buffer_sample_fn cb, void *ctx, const struct ring_buffer_opts *opts) */
  ring_buffer__new: { args: ["i32", "ptr", "ptr", "ptr"], returns: "ptr" },
  ring_buffer__poll: { args: ["ptr", "i32"], returns: "i32" },
  ring_buffer__consume: { args: ["ptr"], returns: "i32" },
  ring_buffer__epoll_fd: { args: ["ptr"], returns: "i32" },
  ring_buffer__free: { args: ["ptr"], returns: "void" },
} as const satisfies SymbolTable;

export const LIBC_SYMBOLS = {
  /** Formats libbpf's print callback arguments (fmt, va_list). */
  vsnprintf: { args: ["ptr", "usize", "ptr", "ptr"], returns: "i32" },
  close: { args: ["i32"], returns: "i32" },
  /** Variadic in C; called with exactly (fd, F_DUPFD_CLOEXEC, minfd), all integers. */
  fcntl: { args: ["i32", "i32", "i32"], returns: "i32" },
  mount: { args: ["ptr", "ptr", "ptr", "u64", "ptr"], returns: "i32" },
  /** Variadic in C; called only as syscall(SYS_bpf, cmd, attr, size), all integers or pointers. */
  syscall: { args: ["i64", "i64", "ptr", "u64"], returns: "i64" },
} as const satisfies SymbolTable;

export type LibbpfSymbols = Library<typeof LIBBPF_SYMBOLS>["symbols"];
export type LibcSymbols = Library<typeof LIBC_SYMBOLS>["symbols"];

/** The print callback's C signature: int (*)(enum libbpf_print_level, const char *fmt, va_list ap). */
export const PRINT_FN = { args: ["i32", "ptr", "ptr"], returns: "i32" } as const satisfies FFIFunction;
/** ring_buffer_sample_fn: int (*)(void *ctx, void *data, size_t size). */
export const SAMPLE_FN = { args: ["ptr", "ptr", "usize"], returns: "i32" } as const satisfies FFIFunction;
