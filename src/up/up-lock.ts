/**
 * One `tidegate up --foreground` per instance. It holds an exclusive flock(2) on
 * `<run-dir>/up.lock` from before it writes its pid file until it exits; the kernel drops the lock
 * when the process dies, however it dies, so a crash never leaves the instance locked. The file is
 * never removed: removing it would let a second `up` lock a new file while the first holds the old.
 *
 * The pid file alone could not guarantee this: two `up` started at once both found no pid file and
 * both wrote one; the one that then failed (the datastore is locked) removed the pid file of the
 * one that kept serving, which `tidegate down` could no longer find.
 */
import { closeSync, constants, openSync } from "node:fs";
import { join } from "node:path";
import { setCloseOnExec, tryLockExclusive } from "../runtime/libc.ts";
import { UpError } from "./single-host.ts";

export interface UpLock {
  readonly path: string;
  release(): void;
}

export function upLockPath(runDir: string): string {
  return join(runDir, "up.lock");
}

/** Takes the instance's lock, or throws `up_running` when another `up` holds it. */
export function lockUp(runDir: string): UpLock {
  const path = upLockPath(runDir);
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  } catch (e) {
    throw new UpError("up_lock_failed", `up: cannot open ${JSON.stringify(path)}: ${(e as { code?: string }).code ?? String(e)}`, { cause: e });
  }
  try {
    setCloseOnExec(fd); // a workload started from here must never hold the instance's lock
    if (!tryLockExclusive(fd)) {
      throw new UpError("up_running", `up: another 'tidegate up' of this instance is starting or running (it holds ${JSON.stringify(path)}); 'tidegate down' stops it`);
    }
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  let held = true;
  return {
    path,
    release() {
      if (!held) return;
      held = false;
      closeSync(fd);
    },
  };
}
