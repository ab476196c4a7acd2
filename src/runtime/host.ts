/**
 * What this host offers tidegate, found rather than assumed (../shared/DESIGN.md section 2):
 * the cgroup2 mount (unified at /sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid hosts),
 * whether bpffs is mounted, whether the kernel exposes BTF for CO-RE, and whether it has kTLS.
 * Every look-up goes through a `HostFiles` reader, so tests need no real /proc or /sys.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";

/**
 * kTLS (the kernel's TLS record layer, `setsockopt(TCP_ULP, "tls")`):
 * - "yes": the `tls` ULP is registered (listed in /proc/sys/net/ipv4/tcp_available_ulp: built in
 *   or its module loaded), or the tls module is loaded (/sys/module/tls);
 * - "loadable": the module file for the running kernel exists (/lib/modules/RELEASE/kernel/net/tls/
 *   tls.ko, possibly compressed) but is not loaded; whether it may be loaded is not checked;
 * - "no": none of these.
 * tidegate does not use kTLS yet: this is reported, never relied on.
 */
export interface KtlsSupport {
  readonly support: "yes" | "loadable" | "no";
  /** Which of the look-ups above decided, in words. */
  readonly detail: string;
}

export interface HostSupport {
  readonly kernel: string;
  /** Where cgroup v2 is mounted, or null when it is not. */
  readonly cgroup2: string | null;
  readonly bpffs: string | null;
  readonly btf: boolean;
  readonly ktls: KtlsSupport;
}

/** The host's files as the probe reads them. */
export interface HostFiles {
  /** The file's text, or null when it cannot be read. */
  text(path: string): string | null;
  /** The names in a folder, or null when it cannot be listed. */
  list(dir: string): readonly string[] | null;
  exists(path: string): boolean;
}

export const SYSTEM_FILES: HostFiles = Object.freeze({
  text(path: string) {
    try {
      return readFileSync(path, "utf8");
    } catch {
      return null;
    }
  },
  list(dir: string) {
    try {
      return readdirSync(dir);
    } catch {
      return null;
    }
  },
  exists: (path: string) => existsSync(path),
});

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

/** tls.ko as modules are installed: plain or compressed. */
const TLS_MODULE = /^tls\.ko(\.(xz|zst|gz))?$/;

/** See KtlsSupport; `kernel` is the running release (uname -r), "unknown" when it could not be read. */
export function probeKtls(files: HostFiles, kernel: string): KtlsSupport {
  const ulps = (files.text("/proc/sys/net/ipv4/tcp_available_ulp") ?? "").split(/\s+/);
  if (ulps.includes("tls")) return { support: "yes", detail: "tls ULP available" };
  if (files.exists("/sys/module/tls")) return { support: "yes", detail: "tls module loaded" };
  const dir = `/lib/modules/${kernel}/kernel/net/tls`;
  const module = kernel === "unknown" || kernel.includes("/") ? undefined : files.list(dir)?.find((n) => TLS_MODULE.test(n));
  if (module !== undefined) return { support: "loadable", detail: `module present, not loaded: ${dir}/${module}` };
  return { support: "no", detail: `no tls ULP, tls module not loaded, no tls module for ${kernel}` };
}

export function probeHost(files: HostFiles = SYSTEM_FILES): HostSupport {
  const mounts = parseMounts(files.text("/proc/self/mounts") ?? "");
  const kernel = (files.text("/proc/sys/kernel/osrelease") ?? "").trim() || "unknown";
  return {
    kernel,
    cgroup2: findCgroup2(mounts),
    bpffs: mounts.find((m) => m.fstype === "bpf")?.target ?? null,
    btf: files.exists("/sys/kernel/btf/vmlinux"),
    ktls: probeKtls(files, kernel),
  };
}
