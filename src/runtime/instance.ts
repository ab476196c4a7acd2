/**
 * The places one tidegate instance uses (../shared/DESIGN.md section 2, "Default places" and
 * "Instances"). The default instance uses the bare names; `--instance NAME` (or TIDEGATE_INSTANCE)
 * suffixes every place, the cgroup and the pin folder with `-NAME`, so several agents and servers
 * share one kernel without touching each other. Each place can also be set on its own by a flag.
 */
import { TidegateError } from "../errors.ts";

export class InstanceError extends TidegateError {}

export interface Places {
  /** null for the default instance. */
  readonly instance: string | null;
  readonly config: string;
  readonly serverConfig: string;
  readonly stateDir: string;
  readonly runDir: string;
  readonly bpfPinDir: string;
  /** The cgroup's name under the cgroup2 mount; the mount itself is found at run time. */
  readonly cgroupName: string;
  readonly auditDir: string;
}

export type PlaceOverrides = Partial<Omit<Places, "instance">>;

/** Instance names become parts of paths, cgroup and pin names: a short, safe alphabet only. */
const INSTANCE_NAME = /^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$/;

export function validateInstanceName(name: string): string {
  if (!INSTANCE_NAME.test(name)) {
    throw new InstanceError(
      "instance_bad_name",
      `instance: ${JSON.stringify(name.slice(0, 64))} is not a valid instance name (1-32 of [a-z0-9-], not starting or ending with "-")`,
    );
  }
  return name;
}

export function placesFor(instance: string | null, overrides: PlaceOverrides = {}): Places {
  const suffix = instance === null ? "" : `-${validateInstanceName(instance)}`;
  const etc = `/etc/tidegate${suffix}`;
  return {
    instance,
    config: overrides.config ?? `${etc}/tidegate.yaml`,
    serverConfig: overrides.serverConfig ?? `${etc}/server.yaml`,
    stateDir: overrides.stateDir ?? `/var/lib/tidegate${suffix}`,
    runDir: overrides.runDir ?? `/run/tidegate${suffix}`,
    bpfPinDir: overrides.bpfPinDir ?? `/sys/fs/bpf/tidegate${suffix}`,
    cgroupName: overrides.cgroupName ?? `tidegate${suffix}`,
    auditDir: overrides.auditDir ?? `/var/log/tidegate${suffix}`,
  };
}
