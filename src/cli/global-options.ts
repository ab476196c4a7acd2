/**
 * Flags every verb accepts (../shared/DESIGN.md section 2): the instance, and one flag per place
 * for operators who need to move a single one.
 */
import type { OptionSpec } from "./command.ts";
import { placesFor, type PlaceOverrides, type Places } from "../runtime/instance.ts";

export const GLOBAL_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  instance: { type: "string", value: "NAME", help: "use instance NAME: suffixes every place, cgroup and pin name (env TIDEGATE_INSTANCE)" },
  config: { type: "string", value: "FILE", help: "agent config and policy (default /etc/tidegate/tidegate.yaml)" },
  "server-config": { type: "string", value: "FILE", help: "server settings (default /etc/tidegate/server.yaml)" },
  "state-dir": { type: "string", value: "DIR", help: "state (default /var/lib/tidegate)" },
  "run-dir": { type: "string", value: "DIR", help: "sockets (default /run/tidegate)" },
  "bpf-dir": { type: "string", value: "DIR", help: "eBPF pins (default /sys/fs/bpf/tidegate)" },
  cgroup: { type: "string", value: "NAME", help: "cgroup name under the cgroup2 mount (default tidegate)" },
  "audit-dir": { type: "string", value: "DIR", help: "audit log (default /var/log/tidegate)" },
  help: { type: "boolean", short: "h", help: "show help for this command" },
};

/** A flag's value when it is a string (parseArgs gives booleans and lists too). */
export function str(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

export function placesFromValues(values: Readonly<Record<string, unknown>>, env: Readonly<Record<string, string | undefined>>): Places {
  const instance = str(values.instance) ?? (env.TIDEGATE_INSTANCE || undefined) ?? null;
  const overrides: PlaceOverrides = {};
  const set = (key: keyof PlaceOverrides, flag: string) => {
    const v = str(values[flag]);
    if (v !== undefined) (overrides as Record<string, string>)[key] = v;
  };
  set("config", "config");
  set("serverConfig", "server-config");
  set("stateDir", "state-dir");
  set("runDir", "run-dir");
  set("bpfPinDir", "bpf-dir");
  set("cgroupName", "cgroup");
  set("auditDir", "audit-dir");
  return placesFor(instance, overrides);
}

/**
 * The global flags that name `places` again (the instance, then every place that differs from
 * that instance's default), for the command lines tidegate prints as the next step.
 */
export function flagsFor(places: Places): string[] {
  const base = placesFor(places.instance);
  const flags = places.instance === null ? [] : ["--instance", places.instance];
  const pairs: [keyof PlaceOverrides, string][] = [
    ["config", "--config"],
    ["serverConfig", "--server-config"],
    ["stateDir", "--state-dir"],
    ["runDir", "--run-dir"],
    ["bpfPinDir", "--bpf-dir"],
    ["cgroupName", "--cgroup"],
    ["auditDir", "--audit-dir"],
  ];
  for (const [key, flag] of pairs) if (places[key] !== base[key]) flags.push(flag, places[key]);
  return flags;
}

/** A command line a POSIX shell reads back as `args`: words with other characters single-quoted. */
export function shellJoin(args: readonly string[]): string {
  return args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(" ");
}
