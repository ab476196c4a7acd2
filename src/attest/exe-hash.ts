/**
 * SHA-256 of the executable a process runs, read through /proc/PID/exe: the descriptor opens the
 * very inode the process was started from, so a file replaced on disk since (renamed over,
 * deleted) does not change the old process's hash.
 *
 * Cache: by (device, inode, size, mtime, ctime) of that inode, so each binary is hashed once. A
 * file rewritten in place has a new ctime even when its mtime is put back (`touch -d` sets ctime
 * to now), so it is hashed again. The cache holds at most `max` entries, least recently used out.
 * A file whose stat changes while it is read is refused (`attest_exe_changed`) and not cached.
 *
 * Concurrent look-ups of a binary not cached yet share one read (a new process that opens many
 * connections at once would otherwise have each of them hash the same file: eight at once took
 * 2.5 s for a 90 MB binary, against 0.5 s for one). When that read fails, a look-up through
 * another process's path reads on its own: the process being read may simply have exited.
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
  /** Reads in progress, by key: the path being read and its result. */
  readonly #reading = new Map<string, { path: string; hash: Promise<string> }>();
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
    // Joins the read in progress; after a failed one through another path, the next read (ours, or
    // one another waiter started meanwhile), so waiters never each read the file.
    for (;;) {
      const running = this.#reading.get(key);
      if (running === undefined) return this.#read(path, key);
      try {
        return await running.hash;
      } catch (e) {
        if (running.path === path) throw e;
      }
    }
  }

  async #read(path: string, key: string): Promise<string> {
    const hash = (async () => {
      const h = await this.#fs.hashFile(path);
      this.hashed++;
      if (exeKey(h.before) !== key || exeKey(h.after) !== key) {
        throw new AttestError("attest_exe_changed", `attest: executable ${JSON.stringify(path)} changed while it was hashed`);
      }
      this.#hashes.set(key, h.sha256);
      while (this.#hashes.size > this.#max) this.#hashes.delete(this.#hashes.keys().next().value as string);
      return h.sha256;
    })();
    this.#reading.set(key, { path, hash });
    try {
      return await hash;
    } finally {
      if (this.#reading.get(key)?.hash === hash) this.#reading.delete(key);
    }
  }
}
