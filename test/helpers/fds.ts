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
