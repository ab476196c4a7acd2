import { describe, expect, test } from "bun:test";
import { probeHost, probeKtls, type HostFiles } from "./host.ts";

const RELEASE = "6.1.0-28-amd64";

/** A host made of `files` (path to text) and `dirs` (folder to names); nothing else exists. */
function host(files: Record<string, string>, dirs: Record<string, string[]> = {}): HostFiles & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    text: (p) => (asked.push(p), files[p] ?? null),
    list: (d) => (asked.push(d), dirs[d] ?? null),
    exists: (p) => (asked.push(p), p in files || p in dirs),
  };
}

const ULP = "/proc/sys/net/ipv4/tcp_available_ulp";
const MODDIR = `/lib/modules/${RELEASE}/kernel/net/tls`;

describe("kTLS probe", () => {
  const cases: [string, HostFiles, string, string][] = [
    ["the tls ULP is listed", host({ [ULP]: "espintcp mptcp tls\n" }), "yes", "tls ULP available"],
    ["the tls ULP alone", host({ [ULP]: "tls\n" }), "yes", "tls ULP available"],
    ["the module is loaded (not yet listed)", host({ [ULP]: "mptcp\n", "/sys/module/tls": "" }), "yes", "tls module loaded"],
    ["tls.ko.xz for the running kernel", host({ [ULP]: "mptcp\n" }, { [MODDIR]: ["tls.ko.xz"] }), "loadable", `module present, not loaded: ${MODDIR}/tls.ko.xz`],
    ["a plain tls.ko", host({}, { [MODDIR]: ["tls.ko"] }), "loadable", `module present, not loaded: ${MODDIR}/tls.ko`],
    ["tls.ko.zst", host({}, { [MODDIR]: ["tls.ko.zst"] }), "loadable", `module present, not loaded: ${MODDIR}/tls.ko.zst`],
    ["only mptcp, no module (this project's development machines)", host({ [ULP]: "mptcp\n" }), "no", `no tls ULP, tls module not loaded, no tls module for ${RELEASE}`],
    ["a folder with other files only", host({ [ULP]: "mptcp\n" }, { [MODDIR]: ["tls.ko.sig", "xtls.ko"] }), "no", `no tls ULP, tls module not loaded, no tls module for ${RELEASE}`],
    ["nothing readable at all", host({}), "no", `no tls ULP, tls module not loaded, no tls module for ${RELEASE}`],
    ["a ULP whose name only contains tls", host({ [ULP]: "ktls-like mptcp\n" }), "no", `no tls ULP, tls module not loaded, no tls module for ${RELEASE}`],
  ];
  for (const [name, files, support, detail] of cases) {
    test(name, () => expect(probeKtls(files, RELEASE)).toEqual({ support: support as "yes", detail }));
  }

  test("the module folder is the running kernel's, and an unknown release looks in none", () => {
    const h = host({}, { "/lib/modules/unknown/kernel/net/tls": ["tls.ko"] });
    expect(probeKtls(h, "unknown").support).toBe("no");
    expect(h.asked.some((p) => p.startsWith("/lib/modules"))).toBe(false);
    const other = host({}, { "/lib/modules/5.10.0-1-amd64/kernel/net/tls": ["tls.ko"] });
    expect(probeKtls(other, RELEASE).support).toBe("no");
  });

  test("probeHost reads the release from /proc and reports kTLS with the rest", () => {
    const h = host({ "/proc/sys/kernel/osrelease": `${RELEASE}\n`, "/proc/self/mounts": "cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n", [ULP]: "tls\n" });
    expect(probeHost(h)).toEqual({ kernel: RELEASE, cgroup2: "/sys/fs/cgroup", bpffs: null, btf: false, ktls: { support: "yes", detail: "tls ULP available" } });
    const none = host({ "/proc/sys/kernel/osrelease": `${RELEASE}\n` }, { [MODDIR]: ["tls.ko.gz"] });
    expect(probeHost(none).ktls.support).toBe("loadable");
  });
});
