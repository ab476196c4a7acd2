/**
 * A BPF object file opened from memory and loaded into the kernel, with its programs, maps and
 * the cgroup links made from its programs (libbpf's bpf_object, bpf_program, bpf_map, bpf_link).
 *
 * Guarantees:
 * - the object's bytes stay referenced until close(): bpf_object__open_mem does not copy them
 *   (PLATFORM-NOTES), and libbpf reads them until bpf_object__load returns;
 * - close() (or dispose) frees the object and closes its program and map fds; it is idempotent,
 *   and every later use throws bpf_closed;
 * - links are independent of the object: a link keeps its program in the kernel after the
 *   object is closed; destroy() detaches the link unless it is pinned (the pin holds the link).
 */
import { ptr, type Pointer } from "bun:ffi";
import { BpfError } from "./errors.ts";
import { checked, checkedPtr, cString, libs, logMark } from "./ffi-call.ts";

export interface BpfProgram {
  readonly name: string;
  /** The ELF section, e.g. "cgroup/connect4". */
  readonly section: string;
  fd(): number;
  /** bpf_program__attach_cgroup: a bpf_link on the cgroup whose directory fd is `cgroupFd`. */
  attachCgroup(cgroupFd: number): BpfLink;
}

export interface BpfLink {
  pin(path: string): void;
  unpin(): void;
  fd(): number;
  /** Frees the link; the kernel detaches it unless it is pinned. Idempotent. */
  destroy(): void;
  [Symbol.dispose](): void;
}

export interface BpfMap {
  readonly name: string;
  /** BPF_MAP_TYPE_* */
  readonly type: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  fd(): number;
  pin(path: string): void;
  unpin(path?: string): void;
}

export interface BpfObject {
  /** bpf_object__load: creates the maps, loads and verifies the programs. Throws bpf_load with the log tail. */
  load(): void;
  /** The program whose C function is `name`; throws bpf_not_found. */
  program(name: string): BpfProgram;
  /** The map named `name`; throws bpf_not_found. */
  map(name: string): BpfMap;
  close(): void;
  [Symbol.dispose](): void;
}

/** libbpf's version, "1.1". */
export function libbpfVersion(): string {
  const { bpf } = libs();
  return `${bpf.libbpf_major_version()}.${bpf.libbpf_minor_version()}`;
}

const OPEN_OPTS_SIZE = 80; // sizeof(struct bpf_object_open_opts), libbpf 1.1
const OPEN_OPTS_OBJECT_NAME = 8;

class Link implements BpfLink {
  #link: Pointer | null;
  readonly #what: string;

  constructor(link: Pointer, what: string) {
    this.#link = link;
    this.#what = what;
  }

  #ptr(op: string): Pointer {
    if (this.#link === null) throw new BpfError("bpf_closed", op, 0, `bpf: ${op} on the destroyed link of ${this.#what}`);
    return this.#link;
  }

  pin(path: string): void {
    const mark = logMark();
    checked(libs().bpf.bpf_link__pin(this.#ptr("bpf_link__pin"), cString(path, "bpf_link__pin")), "bpf_pin", "bpf_link__pin", `of ${this.#what} at ${JSON.stringify(path)}`, mark);
  }

  unpin(): void {
    const mark = logMark();
    checked(libs().bpf.bpf_link__unpin(this.#ptr("bpf_link__unpin")), "bpf_pin", "bpf_link__unpin", `of ${this.#what}`, mark);
  }

  fd(): number {
    return libs().bpf.bpf_link__fd(this.#ptr("bpf_link__fd"));
  }

  destroy(): void {
    if (this.#link === null) return;
    const link = this.#link;
    this.#link = null;
    libs().bpf.bpf_link__destroy(link);
  }

  [Symbol.dispose](): void {
    this.destroy();
  }
}

class ObjectHandle implements BpfObject {
  #obj: Pointer | null;
  /** Kept referenced until close: libbpf does not copy the object's bytes. */
  #bytes: Uint8Array | null;
  readonly #name: string;

  constructor(obj: Pointer, bytes: Uint8Array, name: string) {
    this.#obj = obj;
    this.#bytes = bytes;
    this.#name = name;
  }

  #ptr(op: string): Pointer {
    if (this.#obj === null) throw new BpfError("bpf_closed", op, 0, `bpf: ${op} on the closed object ${JSON.stringify(this.#name)}`);
    return this.#obj;
  }

  load(): void {
    const mark = logMark();
    checked(libs().bpf.bpf_object__load(this.#ptr("bpf_object__load")), "bpf_load", "bpf_object__load", `of ${JSON.stringify(this.#name)}`, mark);
  }

  program(name: string): BpfProgram {
    const { bpf } = libs();
    const p = bpf.bpf_object__find_program_by_name(this.#ptr("bpf_object__find_program_by_name"), cString(name, "bpf_object__find_program_by_name"));
    if (p === null || p === 0) {
      throw new BpfError("bpf_not_found", "bpf_object__find_program_by_name", 2, `bpf: no program ${JSON.stringify(name)} in ${JSON.stringify(this.#name)}`);
    }
    const prog = p as Pointer;
    const what = `program ${JSON.stringify(name)}`;
    const live = (op: string): Pointer => (this.#ptr(op), prog);
    return Object.freeze({
      name,
      section: String(bpf.bpf_program__section_name(prog) ?? ""),
      fd: (): number => checked(bpf.bpf_program__fd(live("bpf_program__fd")), "bpf_load", "bpf_program__fd", `of ${what} (not loaded?)`),
      attachCgroup: (cgroupFd: number): BpfLink => {
        const mark = logMark();
        const link = checkedPtr(bpf.bpf_program__attach_cgroup(live("bpf_program__attach_cgroup"), cgroupFd), "bpf_attach", "bpf_program__attach_cgroup", `of ${what} to cgroup fd ${cgroupFd}`, mark);
        return new Link(link, what);
      },
    });
  }

  map(name: string): BpfMap {
    const { bpf } = libs();
    const p = bpf.bpf_object__find_map_by_name(this.#ptr("bpf_object__find_map_by_name"), cString(name, "bpf_object__find_map_by_name"));
    if (p === null || p === 0) {
      throw new BpfError("bpf_not_found", "bpf_object__find_map_by_name", 2, `bpf: no map ${JSON.stringify(name)} in ${JSON.stringify(this.#name)}`);
    }
    const m = p as Pointer;
    const what = `of map ${JSON.stringify(name)}`;
    const live = (op: string): Pointer => (this.#ptr(op), m);
    return Object.freeze({
      name,
      type: bpf.bpf_map__type(m),
      keySize: bpf.bpf_map__key_size(m),
      valueSize: bpf.bpf_map__value_size(m),
      maxEntries: bpf.bpf_map__max_entries(m),
      fd: (): number => checked(bpf.bpf_map__fd(live("bpf_map__fd")), "bpf_map", "bpf_map__fd", `${what} (not loaded?)`),
      pin: (path: string): void => {
        const mark = logMark();
        checked(bpf.bpf_map__pin(live("bpf_map__pin"), cString(path, "bpf_map__pin")), "bpf_pin", "bpf_map__pin", `${what} at ${JSON.stringify(path)}`, mark);
      },
      unpin: (path?: string): void => {
        const mark = logMark();
        const c = path === undefined ? null : cString(path, "bpf_map__unpin");
        checked(bpf.bpf_map__unpin(live("bpf_map__unpin"), c), "bpf_pin", "bpf_map__unpin", `${what}${path === undefined ? "" : ` at ${JSON.stringify(path)}`}`, mark);
      },
    });
  }

  close(): void {
    if (this.#obj === null) return;
    const obj = this.#obj;
    this.#obj = null;
    libs().bpf.bpf_object__close(obj);
    this.#bytes = null;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * bpf_object__open_mem of an ELF object (a copy of `bytes` is kept by the handle, so the caller
 * may reuse its buffer). `name` is the object's name in libbpf's messages. Throws bpf_open.
 */
export function openObject(bytes: Uint8Array, name: string): BpfObject {
  const { bpf } = libs();
  const copy = bytes.slice();
  const nameC = cString(name, "bpf_object__open_mem");
  const opts = new Uint8Array(OPEN_OPTS_SIZE);
  const view = new DataView(opts.buffer);
  view.setBigUint64(0, BigInt(OPEN_OPTS_SIZE), true);
  view.setBigUint64(OPEN_OPTS_OBJECT_NAME, BigInt(ptr(nameC)), true);
  const mark = logMark();
  const obj = bpf.bpf_object__open_mem(copy, copy.length, opts);
  const handle = checkedPtr(obj, "bpf_open", "bpf_object__open_mem", `of ${JSON.stringify(name)} (${copy.length} bytes)`, mark);
  nameC.fill(0); // keeps nameC alive past the call; libbpf copied the name
  return new ObjectHandle(handle, copy, name);
}
