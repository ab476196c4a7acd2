import type { Command } from "./command.ts";
import { COMMIT, VERSION } from "../version.ts";
import { probeHost, type KtlsSupport } from "../runtime/host.ts";
import { libbpfInfo, type LibbpfInfo } from "../bpf/libbpf.ts";
import { landlockAbi } from "../runtime/libc.ts";

export function versionLine(): string {
  return `tidegate ${VERSION} (${COMMIT})`;
}

function libbpfText(l: LibbpfInfo): string {
  if (l.unavailable !== null) return `unavailable: ${l.unavailable}`;
  return `${l.version} (${l.source === "embedded" ? "embedded" : "the system's libbpf.so.1: a source run embeds none"})`;
}

/** Landlock's ABI here, or why it cannot be told (no glibc): `tidegate run` needs 6 to keep workloads apart. */
function landlock(): { abi: number | null; keeps_workloads_apart: boolean; detail?: string } {
  try {
    const abi = landlockAbi();
    return { abi, keeps_workloads_apart: abi >= 6 };
  } catch (e) {
    return { abi: null, keeps_workloads_apart: false, detail: e instanceof Error ? e.message : String(e) };
  }
}

function landlockText(l: ReturnType<typeof landlock>): string {
  if (l.abi === null) return `unknown (${l.detail})`;
  if (l.keeps_workloads_apart) return `ABI ${l.abi} (each workload in a domain of its own: no ptrace or signal between workloads)`;
  return `${l.abi === 0 ? "none" : `ABI ${l.abi}`} (ABI 6 needed: workloads of one uid can ptrace each other)`;
}

function ktlsText(k: KtlsSupport): string {
  return `${k.support} (${k.detail}) (tidegate does not use it yet)`;
}

export const versionCommand: Command = {
  name: "version",
  summary: "print the version and what this host offers tidegate",
  usage: ["version [--json]"],
  help: [
    "Prints tidegate's version and commit, the Bun runtime it was built with, the libbpf it",
    "carries (or why it cannot be loaded here), and what the host offers: the kernel, where",
    "cgroup v2 is mounted, whether bpffs is mounted, whether the kernel exposes BTF, whether it",
    "has kTLS, and its Landlock ABI (6 or later keeps workloads of one uid from ptrace-ing each",
    "other). 'tidegate --version' prints the first line only.",
  ].join("\n"),
  options: { json: { type: "boolean", help: "print one JSON object" } },
  run: async ({ values, io }) => {
    const host = { ...probeHost(), landlock: landlock() };
    const libbpf = libbpfInfo();
    const bun = typeof Bun !== "undefined" ? Bun.version : "none";
    if (values.json) {
      const info = { version: VERSION, commit: COMMIT, bun, libbpf, host: { ...host, ktls: { ...host.ktls, used_by_tidegate: false } } };
      io.out(JSON.stringify(info, null, 2) + "\n");
      return 0;
    }
    const rows: [string, string][] = [
      ["commit", COMMIT],
      ["bun", bun],
      ["libbpf", libbpfText(libbpf)],
      ["kernel", host.kernel],
      ["cgroup2", host.cgroup2 ?? "not mounted (tidegate run will refuse)"],
      ["bpffs", host.bpffs ?? "not mounted (the agent mounts it at /sys/fs/bpf)"],
      ["btf", host.btf ? "yes (/sys/kernel/btf/vmlinux)" : "no (CO-RE programs cannot load)"],
      ["ktls", ktlsText(host.ktls)],
      ["landlock", landlockText(host.landlock)],
    ];
    io.out(`tidegate ${VERSION}\n` + rows.map(([k, v]) => `  ${k.padEnd(8)} ${v}`).join("\n") + "\n");
    return 0;
  },
};
