import type { Command } from "./command.ts";
import { COMMIT, VERSION } from "../version.ts";
import { probeHost } from "../runtime/host.ts";

export function versionLine(): string {
  return `tidegate ${VERSION} (${COMMIT})`;
}

export const versionCommand: Command = {
  name: "version",
  summary: "print the version and what this host offers tidegate",
  usage: ["version [--json]"],
  help: [
    "Prints tidegate's version and commit, the Bun runtime it was built with, and what the host",
    "offers: the kernel, where cgroup v2 is mounted, whether bpffs is mounted and whether the",
    "kernel exposes BTF. 'tidegate --version' prints the first line only.",
  ].join("\n"),
  options: { json: { type: "boolean", help: "print one JSON object" } },
  run: async ({ values, io }) => {
    const host = probeHost();
    const info = { version: VERSION, commit: COMMIT, bun: typeof Bun !== "undefined" ? Bun.version : "none", host };
    if (values.json) {
      io.out(JSON.stringify(info, null, 2) + "\n");
      return 0;
    }
    const rows: [string, string][] = [
      ["commit", COMMIT],
      ["bun", info.bun],
      ["kernel", host.kernel],
      ["cgroup2", host.cgroup2 ?? "not mounted (tidegate run will refuse)"],
      ["bpffs", host.bpffs ?? "not mounted (the agent mounts it at /sys/fs/bpf)"],
      ["btf", host.btf ? "yes (/sys/kernel/btf/vmlinux)" : "no (CO-RE programs cannot load)"],
    ];
    io.out(`tidegate ${VERSION}\n` + rows.map(([k, v]) => `  ${k.padEnd(8)} ${v}`).join("\n") + "\n");
    return 0;
  },
};
