/**
 * The OS look-ups attestation makes, behind one small interface (../shared/STYLE.md, SPIRE's unix
 * attestor): the real one (node-proc-fs.ts) reads the host; unit tests pass an in-memory fake
 * (fake-proc-fs.ts), so they need no real /proc. Paths are absolute (`/proc/PID/...`, `/etc/passwd`,
 * `<cgroup2 mount>/...`).
 *
 * Errors: a missing file or process throws an Error whose `code` is "ENOENT" or "ESRCH"
 * (as node:fs does); anything else is passed through.
 */

/** What attestation needs from stat(2): identity of the file, its change times and owner. */
export interface FileStat {
  readonly dev: bigint;
  readonly ino: bigint;
  readonly size: bigint;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
  readonly nlink: number;
  readonly uid: number;
  readonly gid: number;
  readonly isDirectory: boolean;
}

export interface HashedFile {
  /** Lowercase hex SHA-256 of the whole content. */
  readonly sha256: string;
  /** stat of the opened file before and after reading it (fstat of the same descriptor). */
  readonly before: FileStat;
  readonly after: FileStat;
}

export interface ProcFs {
  /** A small text file (/proc/PID/stat, status, cgroup; /etc/passwd, /etc/group). */
  readText(path: string): Promise<string>;
  readlink(path: string): Promise<string>;
  /** stat(2), following symbolic and /proc magic links (so /proc/PID/exe gives the running file). */
  stat(path: string): Promise<FileStat>;
  /** The owner of `path` (not following a final link): cheaper than stat, for /proc/PID. */
  owner(path: string): Promise<{ readonly uid: number; readonly gid: number }>;
  /** Opens `path` once, and hashes what that descriptor reads. */
  hashFile(path: string): Promise<HashedFile>;
  /**
   * The same three, synchronous: what a cached attestation reads (the start time, the executable's
   * identity, the owner of /proc/PID) on every connection, where each promise and await showed in
   * its tail (docs/benchmarks.md, "Workload attestation").
   */
  readTextSync(path: string): string;
  /**
   * Reads `path` from its start into `into` with one read(2) and returns the bytes read, so the
   * start time is parsed without making a string (docs/benchmarks.md: decoding it was 3 µs of a
   * cached hit's p99). A result of `into.length` means the file may go on: read it with
   * readTextSync.
   */
  readBytesSync(path: string, into: Uint8Array): number;
  /** `dev:ino` of what `path` leads to (following links, as `stat`), in decimal. */
  fileIdSync(path: string): string;
  ownerSync(path: string): { readonly uid: number; readonly gid: number };
}

/** True for the errors a vanished file or process gives. */
export function isGone(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === "ENOENT" || code === "ESRCH";
}
