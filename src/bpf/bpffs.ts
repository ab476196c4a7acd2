/**
 * bpffs, where programs' links and maps are pinned so they outlive the agent (DESIGN.md section 3,
 * "Fail closed"). It is mounted only when /proc/self/mounts shows no bpf filesystem at the
 * directory; tidegate never unmounts it.
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { BpfError } from "./errors.ts";
import { cString, describeErrno, errno, libs } from "./ffi-call.ts";

/** Mount points of bpf filesystems in a /proc/self/mounts text (octal escapes decoded). */
export function bpffsMounts(mountsText: string): string[] {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return mountsText
    .split("\n")
    .map((line) => line.split(" "))
    .filter((f) => f.length >= 3 && f[2] === "bpf")
    .map((f) => unescape(f[1]!));
}

/**
 * Makes sure a bpffs is mounted at `dir` (created when missing): "present" when one already is,
 * "mounted" after mount("bpf", dir, "bpf", 0, NULL). Failure: bpf_mount with errno.
 */
export function mountBpffsIfNeeded(dir: string): "mounted" | "present" {
  const target = dir.length > 1 ? dir.replace(/\/+$/, "") : dir;
  if (bpffsMounts(readFileSync("/proc/self/mounts", "utf8")).includes(target)) return "present";
  if (!existsSync(target)) {
    try {
      mkdirSync(target, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw new BpfError("bpf_mount", "mkdir", 0, `bpf: cannot create ${JSON.stringify(target)} to mount bpffs: ${(e as Error).message}`, { cause: e });
    }
  }
  const fs = cString("bpf", "mount");
  const ret = libs().libc.mount(fs, cString(target, "mount"), fs, 0, null);
  if (ret !== 0) {
    const err = errno();
    throw new BpfError("bpf_mount", "mount", err, `bpf: mount -t bpf at ${JSON.stringify(target)} failed: ${describeErrno(err)}`);
  }
  return "mounted";
}
