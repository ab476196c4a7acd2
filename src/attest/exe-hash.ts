/**
 * SHA-256 of the executable a process runs, read through /proc/PID/exe: the descriptor opens the
 * very inode the process was started from, so a file replaced on disk since (renamed over,
 * deleted) does not change the old process's hash.
 *
 * Cache: by (device, inode, size, mtime, ctime) of that inode, so each binary is hashed once. A
 * file rewritten in place has a new ctime even when its mtime is put back (`touch -d` sets ctime
 * to now), so it is hashed again. The cache holds at most `max` entries, least recently used out.
 * A file whose stat changes while it is read is refused (`attest_exe_changed`) and not cached.
 */
import { AttestError } from "./errors.ts";
import type { FileStat, ProcFs } from "./proc-fs.ts";

export function exeKey(s: FileStat): string {
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
}

export class ExeHashCache {
  readonly #fs: ProcFs;
  readonly #max: number;
  readonly #hashes = new Map<string, string>();
  /** How many files were hashed (not served from the cache): for tests and the benchmark. */
  hashed = 0;

  constructor(fs: ProcFs, max = 512) {
    this.#fs = fs;
    this.#max = max;
  }

  get size(): number {
    return this.#hashes.size;
  }

  /** `st` is the stat of `path` taken by the caller; the hash is of that same file. */
  async sha256(path: string, st: FileStat): Promise<string> {
    const key = exeKey(st);
    const hit = this.#hashes.get(key);
    if (hit !== undefined) {
      this.#hashes.delete(key);
      this.#hashes.set(key, hit);
      return hit;
    }
    const h = await this.#fs.hashFile(path);
    this.hashed++;
    if (exeKey(h.before) !== key || exeKey(h.after) !== key) {
      throw new AttestError("attest_exe_changed", `attest: executable ${JSON.stringify(path)} changed while it was hashed`);
    }
    this.#hashes.set(key, h.sha256);
    while (this.#hashes.size > this.#max) this.#hashes.delete(this.#hashes.keys().next().value as string);
    return h.sha256;
  }
}
