/**
 * The store's files on disk. Guarantees:
 * - the store folder is made 0700 (parents 0755) and set to 0700 on every write; it must be a
 *   folder of this user, not a symbolic link (`secret_store_permissions`);
 * - a file is read through a descriptor opened with O_NOFOLLOW and must be a regular file of this
 *   user with no group or other permission bits (`secret_store_permissions`); a missing one reads
 *   as null;
 * - a file is replaced whole: written to a new 0600 temporary name (O_EXCL, O_NOFOLLOW) in the same
 *   folder, fsynced, renamed over the old one, then the folder is fsynced. A reader or a crash sees
 *   the old file or the new one; a failed write removes the temporary file and leaves the old one
 *   (`secret_write_failed`);
 * - the key file is created once, 0600, O_EXCL: never over an existing file.
 */
import { closeSync, constants, fstatSync, fsyncSync, lstatSync, mkdirSync, openSync, readSync, renameSync, statSync, unlinkSync, writeSync, chmodSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { dirname, join } from "node:path";
import { SecretError, errnoCode } from "./errors.ts";

/** The calls that write; tests replace one to make a write fail halfway. */
export interface FileOps {
  openSync(path: string, flags: number, mode: number): number;
  writeSync(fd: number, buffer: Uint8Array, offset: number, length: number): number;
  fsyncSync(fd: number): void;
  closeSync(fd: number): void;
  renameSync(from: string, to: string): void;
  unlinkSync(path: string): void;
}

export const nodeFileOps: FileOps = { openSync, writeSync, fsyncSync, closeSync, renameSync, unlinkSync };

/** Larger files are refused before they are read. */
const MAX_FILE_BYTES = 16 * 1024 * 1024;

const CREATE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

function why(e: unknown): string {
  return errnoCode(e) ?? "error";
}

function identityOf(st: { dev: bigint; ino: bigint; size: bigint; mtimeNs: bigint; ctimeNs: bigint }): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

/** What changes whenever the file is replaced or written; null when it does not exist. */
export function fileIdentity(path: string): string | null {
  try {
    return identityOf(statSync(path, { bigint: true }));
  } catch (e) {
    if (errnoCode(e) === "ENOENT") return null;
    throw new SecretError("secret_store_unreadable", `secrets: cannot read ${path}: ${why(e)}`);
  }
}

export interface PrivateFile {
  readonly bytes: Uint8Array;
  readonly identity: string;
}

function checkOwnedPrivate(path: string, st: { uid: bigint; mode: bigint }, what: string): void {
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== BigInt(uid)) throw new SecretError("secret_store_permissions", `secrets: ${path} belongs to uid ${st.uid}, not ${uid}`);
  if ((st.mode & 0o077n) !== 0n) {
    throw new SecretError("secret_store_permissions", `secrets: ${path} has mode ${(st.mode & 0o777n).toString(8).padStart(4, "0")}; ${what} must be 0600`);
  }
}

export function readPrivateFile(path: string, what: string): PrivateFile | null {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (e) {
    if (errnoCode(e) === "ENOENT") return null;
    if (errnoCode(e) === "ELOOP") throw new SecretError("secret_store_permissions", `secrets: ${path} is a symbolic link`);
    throw new SecretError("secret_store_unreadable", `secrets: cannot read ${path}: ${why(e)}`);
  }
  try {
    const st = fstatSync(fd, { bigint: true });
    if (!st.isFile()) throw new SecretError("secret_store_permissions", `secrets: ${path} is not a regular file`);
    checkOwnedPrivate(path, st, what);
    if (st.size > BigInt(MAX_FILE_BYTES)) throw new SecretError("secret_store_corrupt", `secrets: ${path} is ${st.size} bytes, more than ${MAX_FILE_BYTES}`);
    const bytes = new Uint8Array(Number(st.size));
    let at = 0;
    while (at < bytes.length) {
      const n = readSync(fd, bytes, at, bytes.length - at, null);
      if (n === 0) break;
      at += n;
    }
    return { bytes: bytes.subarray(0, at), identity: identityOf(st) };
  } catch (e) {
    if (e instanceof SecretError) throw e;
    throw new SecretError("secret_store_unreadable", `secrets: cannot read ${path}: ${why(e)}`);
  } finally {
    closeSync(fd);
  }
}

/** Makes `dir` (0700) and its parents (0755) when missing; checks and fixes its mode. */
export function ensureStoreDir(dir: string): void {
  try {
    mkdirSync(dirname(dir), { recursive: true, mode: 0o755 });
    mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if (errnoCode(e) !== "EEXIST") throw new SecretError("secret_store_unreadable", `secrets: cannot create ${dir}: ${why(e)}`);
  }
  const st = lstatSync(dir);
  if (st.isSymbolicLink() || !st.isDirectory()) throw new SecretError("secret_store_permissions", `secrets: ${dir} is not a folder (a symbolic link or a file)`);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) throw new SecretError("secret_store_permissions", `secrets: ${dir} belongs to uid ${st.uid}, not ${uid}`);
  chmodSync(dir, 0o700);
}

function writeAll(ops: FileOps, fd: number, bytes: Uint8Array): void {
  let at = 0;
  while (at < bytes.length) at += ops.writeSync(fd, bytes, at, bytes.length - at);
}

export function syncDir(dir: string, ops: FileOps = nodeFileOps): void {
  let fd: number | null = null;
  try {
    fd = ops.openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY, 0);
    ops.fsyncSync(fd);
  } catch (e) {
    throw new SecretError("secret_write_failed", `secrets: cannot sync ${dir} after writing: ${why(e)}`);
  } finally {
    if (fd !== null) ops.closeSync(fd);
  }
}

/** Replaces `dir/name` with `bytes` (mode 0600) atomically; see the guarantees above. */
export function writeFileAtomic(dir: string, name: string, bytes: Uint8Array, ops: FileOps = nodeFileOps): void {
  const final = join(dir, name);
  const tmp = join(dir, `.${name}.${randomUUID()}.tmp`);
  let fd: number | null = null;
  try {
    fd = ops.openSync(tmp, CREATE, 0o600);
    writeAll(ops, fd, bytes);
    ops.fsyncSync(fd);
    ops.closeSync(fd);
    fd = null;
    ops.renameSync(tmp, final);
  } catch (e) {
    if (fd !== null) {
      try {
        ops.closeSync(fd);
      } catch {
        // the write already failed; that error is the one reported
      }
    }
    try {
      ops.unlinkSync(tmp);
    } catch {
      // never created, or already renamed
    }
    throw new SecretError("secret_write_failed", `secrets: cannot write ${final}: ${why(e)} (the previous file is unchanged)`);
  }
  syncDir(dir, ops);
}

/** Creates `path` with `bytes`, 0600, only when it does not exist yet. */
export function createPrivateFile(path: string, bytes: Uint8Array, ops: FileOps = nodeFileOps): void {
  let fd: number;
  try {
    fd = ops.openSync(path, CREATE, 0o600);
  } catch (e) {
    throw new SecretError("secret_write_failed", `secrets: cannot create ${path}: ${why(e)}`);
  }
  try {
    writeAll(ops, fd, bytes);
    ops.fsyncSync(fd);
  } catch (e) {
    ops.closeSync(fd);
    ops.unlinkSync(path);
    throw new SecretError("secret_write_failed", `secrets: cannot write ${path}: ${why(e)}`);
  }
  ops.closeSync(fd);
  syncDir(dirname(path), ops);
}
