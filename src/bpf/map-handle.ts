/**
 * Reads and writes one BPF map through an fd of its own, whether the map came from a loaded
 * object or from a pin (bpf_map_* syscalls wrapped by libbpf).
 *
 * Guarantees (the kernel copies exactly key_size / value_size bytes from user pointers, so these
 * are memory safety, not style):
 * - every key and value passed in has exactly the map's key or value size, else bpf_map;
 * - a per-CPU map is read only with lookupPerCpu, whose buffer holds one 8-byte-aligned slot per
 *   possible CPU; lookup and update refuse per-CPU maps;
 * - the handle owns its fd (a dup for fromMap) and close() is idempotent; use after close
 *   throws bpf_closed.
 */
import type { BpfMap } from "./bpf-object.ts";
import { closeFd, dupFd, mapInfo, objGet } from "./bpf-fds.ts";
import { BpfError, ENOENT } from "./errors.ts";
import { bpfFailure, libs } from "./ffi-call.ts";

const PERCPU_TYPES = new Set([5, 6, 10, 21]); // PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH, PERCPU_CGROUP_STORAGE
const EINVAL = 22;
/** The kernel's internal "operation not supported" (524), which the bpf syscall can return. */
const ENOTSUPP = 524;
const UPDATE_FLAGS = { any: 0, noexist: 1, exist: 2 } as const;

export class MapHandle {
  #fd: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  /** BPF_MAP_TYPE_* */
  readonly type: number;
  readonly name: string;
  /** take() is a lookup and a delete: the kernel refused the combined command once. */
  #separateTake = false;

  private constructor(fd: number, name: string, type: number, keySize: number, valueSize: number, maxEntries: number) {
    this.#fd = fd;
    this.name = name;
    this.type = type;
    this.keySize = keySize;
    this.valueSize = valueSize;
    this.maxEntries = maxEntries;
  }

  /**
   * The map pinned at `path`. Nothing pinned there: bpf_not_found. A map whose key or value size
   * is not the one asked for (another layout): bpf_map, and the fd is closed.
   */
  static fromPinned(path: string, keySize: number, valueSize: number): MapHandle {
    const fd = objGet(path);
    try {
      const info = mapInfo(fd);
      if (info.keySize !== keySize || info.valueSize !== valueSize) {
        throw new BpfError(
          "bpf_map",
          "bpf_obj_get_info_by_fd",
          0,
          `bpf: the map pinned at ${JSON.stringify(path)} has key/value sizes ${info.keySize}/${info.valueSize}, not ${keySize}/${valueSize}`,
        );
      }
      return new MapHandle(fd, info.name, info.type, info.keySize, info.valueSize, info.maxEntries);
    } catch (e) {
      closeFd(fd);
      throw e;
    }
  }

  /** A handle on a loaded object's map, with its own fd: closing either leaves the other working. */
  static fromMap(m: BpfMap): MapHandle {
    return new MapHandle(dupFd(m.fd()), m.name, m.type, m.keySize, m.valueSize, m.maxEntries);
  }

  get fd(): number {
    if (this.#fd < 0) throw new BpfError("bpf_closed", "map", 0, `bpf: map ${JSON.stringify(this.name)} used after close`);
    return this.#fd;
  }

  #size(buf: Uint8Array, want: number, what: string, op: string): Uint8Array {
    if (buf.length !== want) {
      throw new BpfError("bpf_map", op, 0, `bpf: ${op} on map ${JSON.stringify(this.name)}: ${what} of ${buf.length} bytes, want ${want}`);
    }
    return buf;
  }

  #notPerCpu(op: string): void {
    if (PERCPU_TYPES.has(this.type)) {
      throw new BpfError("bpf_map", op, 0, `bpf: ${op} on per-CPU map ${JSON.stringify(this.name)}: use lookupPerCpu`);
    }
  }

  #fail(op: string, ret: number): BpfError {
    return bpfFailure("bpf_map", op, -ret, `on map ${JSON.stringify(this.name)}`);
  }

  /**
   * The value under `key`, or null when there is none (ENOENT). On an LPM trie this is the
   * kernel's longest-prefix match for the key's address, not an exact lookup (use keys() for that).
   */
  lookup(key: Uint8Array): Uint8Array | null {
    this.#notPerCpu("bpf_map_lookup_elem");
    const value = new Uint8Array(this.valueSize);
    const ret = libs().bpf.bpf_map_lookup_elem(this.fd, this.#size(key, this.keySize, "a key", "bpf_map_lookup_elem"), value);
    if (ret === -ENOENT) return null;
    if (ret < 0) throw this.#fail("bpf_map_lookup_elem", ret);
    return value;
  }

  /** A per-CPU map's values under `key`: one per possible CPU, each valueSize bytes; [] when absent. */
  lookupPerCpu(key: Uint8Array): Uint8Array[] {
    if (!PERCPU_TYPES.has(this.type)) {
      throw new BpfError("bpf_map", "bpf_map_lookup_elem", 0, `bpf: lookupPerCpu on map ${JSON.stringify(this.name)}, which is not per-CPU`);
    }
    const { bpf } = libs();
    const cpus = bpf.libbpf_num_possible_cpus();
    if (cpus <= 0) throw bpfFailure("bpf_map", "libbpf_num_possible_cpus", -cpus, "");
    const slot = Math.ceil(this.valueSize / 8) * 8;
    const buf = new Uint8Array(slot * cpus);
    const ret = bpf.bpf_map_lookup_elem(this.fd, this.#size(key, this.keySize, "a key", "bpf_map_lookup_elem"), buf);
    if (ret === -ENOENT) return [];
    if (ret < 0) throw this.#fail("bpf_map_lookup_elem", ret);
    return Array.from({ length: cpus }, (_, i) => buf.slice(i * slot, i * slot + this.valueSize));
  }

  /** BPF_ANY (default), BPF_NOEXIST or BPF_EXIST; the kernel's EEXIST/ENOENT for those are bpf_map. */
  update(key: Uint8Array, value: Uint8Array, flags: "any" | "noexist" | "exist" = "any"): void {
    this.#notPerCpu("bpf_map_update_elem");
    const ret = libs().bpf.bpf_map_update_elem(
      this.fd,
      this.#size(key, this.keySize, "a key", "bpf_map_update_elem"),
      this.#size(value, this.valueSize, "a value", "bpf_map_update_elem"),
      UPDATE_FLAGS[flags],
    );
    if (ret < 0) throw this.#fail("bpf_map_update_elem", ret);
  }

  /**
   * The value under `key`, deleted in the same call (BPF_MAP_LOOKUP_AND_DELETE_ELEM: hash maps,
   * Linux 5.14), or null when there is none. Where the kernel does not take that command for this
   * map (EINVAL, ENOTSUPP), a lookup then a delete, from then on.
   */
  take(key: Uint8Array): Uint8Array | null {
    this.#notPerCpu("bpf_map_lookup_and_delete_elem");
    if (this.#separateTake) {
      const value = this.lookup(key);
      if (value !== null) this.delete(key);
      return value;
    }
    const value = new Uint8Array(this.valueSize);
    const ret = libs().bpf.bpf_map_lookup_and_delete_elem(this.fd, this.#size(key, this.keySize, "a key", "bpf_map_lookup_and_delete_elem"), value);
    if (ret === -ENOENT) return null;
    if (ret === -EINVAL || ret === -ENOTSUPP) {
      this.#separateTake = true;
      return this.take(key);
    }
    if (ret < 0) throw this.#fail("bpf_map_lookup_and_delete_elem", ret);
    return value;
  }

  /** True when an entry was deleted, false when there was none. */
  delete(key: Uint8Array): boolean {
    const ret = libs().bpf.bpf_map_delete_elem(this.fd, this.#size(key, this.keySize, "a key", "bpf_map_delete_elem"));
    if (ret === -ENOENT) return false;
    if (ret < 0) throw this.#fail("bpf_map_delete_elem", ret);
    return true;
  }

  /**
   * Every key, by bpf_map_get_next_key from the start. A map changing meanwhile may give a key
   * twice or miss one (a hash map restarts when the current key is deleted); the walk stops after
   * max_entries + 1 keys so it always ends.
   */
  keys(): Uint8Array[] {
    if (this.keySize === 0) throw new BpfError("bpf_map", "bpf_map_get_next_key", 0, `bpf: map ${JSON.stringify(this.name)} has no keys`);
    const { bpf } = libs();
    const out: Uint8Array[] = [];
    let prev: Uint8Array | null = null;
    while (out.length <= this.maxEntries) {
      const next = new Uint8Array(this.keySize);
      const ret = bpf.bpf_map_get_next_key(this.fd, prev, next);
      if (ret === -ENOENT) break;
      if (ret < 0) throw this.#fail("bpf_map_get_next_key", ret);
      out.push(next);
      prev = next;
    }
    return out;
  }

  close(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    closeFd(fd);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
