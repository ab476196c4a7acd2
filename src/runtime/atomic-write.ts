/**
 * Writes a file whole: a temporary name beside it opened with O_EXCL and O_NOFOLLOW, its mode set
 * with fchmod (so no umask narrows a public file or widens nothing), synced, then renamed over the
 * old one. A reader sees the old file or the new one, never a part; a key file is never readable
 * by anyone but its owner, not even for an instant.
 */
import { closeSync, constants, fchmodSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { open, unlink } from "node:fs/promises";

/** The temporary file beside `path`: a fresh name, created by this call or not at all, never through a link. */
const tempName = (path: string) => `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
const TEMP_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

export function writeAtomic(path: string, text: string, mode: number): void {
  const tmp = tempName(path);
  const fd = openSync(tmp, TEMP_FLAGS, mode & 0o600);
  try {
    fchmodSync(fd, mode);
    writeSync(fd, text);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    unlinkSync(tmp);
    throw e;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (e) {
    unlinkSync(tmp);
    throw e;
  }
}

/**
 * writeAtomic with the writing and syncing on the runtime's thread pool, off the event loop. Just
 * before the rename, which is synchronous, `stillWanted()` is asked: when it says no (a newer file
 * was written meanwhile), the temporary file is removed and nothing is replaced. The check and the
 * rename run in one turn of the event loop, so a synchronous writeAtomic of a newer text can never
 * be overwritten by an older one. Resolves true when the file was replaced.
 */
export async function writeAtomicInBackground(path: string, text: string, mode: number, stillWanted: () => boolean): Promise<boolean> {
  const tmp = tempName(path);
  const fh = await open(tmp, TEMP_FLAGS, mode & 0o600);
  try {
    await fh.chmod(mode);
    await fh.writeFile(text);
    await fh.sync();
  } catch (e) {
    await fh.close();
    await unlink(tmp).catch(() => {});
    throw e;
  }
  await fh.close();
  if (!stillWanted()) {
    await unlink(tmp).catch(() => {});
    return false;
  }
  try {
    renameSync(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
  return true;
}
