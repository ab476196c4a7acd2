/**
 * What this host offers tidegate, found rather than assumed (../shared/DESIGN.md section 2):
 * the cgroup2 mount (unified at /sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid hosts),
 * whether bpffs is mounted, and whether the kernel exposes BTF for CO-RE.
 */
import { readFileSync, existsSync } from "node:fs";

export interface HostSupport {
  readonly kernel: string;
  /** Where cgroup v2 is mounted, or null when it is not. */
  readonly cgroup2: string | null;
  readonly bpffs: string | null;
  readonly btf: boolean;
}

interface Mount {
  readonly target: string;
  readonly fstype: string;
}

/** Parses /proc/self/mounts; octal escapes (\040 for a space) are decoded. */
export function parseMounts(text: string): Mount[] {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return text
    .split("\n")
    .map((line) => line.split(" "))
    .filter((f) => f.length >= 3)
    .map((f) => ({ target: unescape(f[1]!), fstype: f[2]! }));
}

/** Prefers the unified mount point when several cgroup2 mounts exist. */
export function findCgroup2(mounts: readonly Mount[]): string | null {
  const v2 = mounts.filter((m) => m.fstype === "cgroup2").map((m) => m.target);
  for (const preferred of ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]) if (v2.includes(preferred)) return preferred;
  return v2[0] ?? null;
}

function readText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

export function probeHost(): HostSupport {
  const mounts = parseMounts(readText("/proc/self/mounts"));
  return {
    kernel: readText("/proc/sys/kernel/osrelease").trim() || "unknown",
    cgroup2: findCgroup2(mounts),
    bpffs: mounts.find((m) => m.fstype === "bpf")?.target ?? null,
    btf: existsSync("/sys/kernel/btf/vmlinux"),
  };
}
