/** Descriptors of this test process, read from /proc/self/fd. */
import { readdirSync, readlinkSync } from "node:fs";

/** How many of this process's descriptors are `fd`'s file (pipe:[inode], socket:[inode] and the like). */
export function holders(fd: number): number {
  const target = readlinkSync(`/proc/self/fd/${fd}`);
  return readdirSync("/proc/self/fd").filter((n) => {
    try {
      return readlinkSync(`/proc/self/fd/${n}`) === target;
    } catch {
      return false;
    }
  }).length;
}

/** The UnixFdError (or other `cls` error) `fn` throws; fails the test when it throws none, or another kind. */
export function thrownAs<E extends Error>(cls: abstract new (...args: never[]) => E, fn: () => unknown): E {
  try {
    fn();
  } catch (e) {
    if (e instanceof cls) return e;
    throw e;
  }
  throw new Error("did not throw");
}

/** Polls `fn` (which must not block) every 5 ms until it returns non-null, for at most `ms`. */
export async function pollUntil<T>(fn: () => T | null, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== null) return v;
    if (Date.now() > end) throw new Error("timed out");
    await Bun.sleep(5);
  }
}
