/**
 * The tidegate attestor: `tidegate:workload:NAME` for a process in the cgroup the agent made for
 * workload NAME (../shared/DESIGN.md section 2, "Workloads and cgroups"). The layout, relative to
 * the cgroup2 mount (docs/attestation.md):
 *
 *     <cgroupName>/workloads/<NAME>          one cgroup per workload NAME, made by the agent (root)
 *     <cgroupName>/workloads/<NAME>/<sub>    a process there is still workload NAME
 *
 * Guarantee: the selector is given only when every directory from `<cgroupName>` down to the
 * process's own cgroup is owned by root; otherwise attestation fails (`attest_cgroup_untrusted`):
 * a cgroup a user could make must not claim a workload name, and a process that seems to be in a
 * managed cgroup that is not the agent's is refused, not given a weaker identity.
 */
import { join } from "node:path";
import { quote } from "../errors.ts";
import { WORKLOAD_NAME } from "../policy/names.ts";
import type { ProcessRef, WorkloadAttestor } from "./attestor.ts";
import { AttestError } from "./errors.ts";
import type { ProcFs } from "./proc-fs.ts";
import { parseCgroupV2 } from "./proc-text.ts";

/** Workload names as cgroup directory names (src/policy/names.ts): `tidegate run --workload` must accept no others. */
export { WORKLOAD_NAME };

/** The cgroup path (relative to the cgroup2 mount, leading "/") of workload `name`. */
export function workloadCgroupPath(cgroupName: string, name: string): string {
  if (!WORKLOAD_NAME.test(name)) throw new AttestError("attest_bad_workload", `attest: workload name ${quote(name)} is not 1-63 of [A-Za-z0-9._-] starting with a letter or digit`);
  return `/${cgroupName}/workloads/${name}`;
}

export class TidegateAttestor implements WorkloadAttestor {
  readonly name = "tidegate";
  readonly #fs: ProcFs;
  readonly #mount: string;
  readonly #prefix: string;

  constructor(fs: ProcFs, mount: string, cgroupName: string) {
    this.#fs = fs;
    this.#mount = mount;
    this.#prefix = `/${cgroupName}/workloads/`;
  }

  async attest(proc: ProcessRef): Promise<string[]> {
    const path = parseCgroupV2(await this.#fs.readText(`/proc/${proc.pid}/cgroup`), `/proc/${proc.pid}/cgroup`);
    if (path === null || !path.startsWith(this.#prefix)) return [];
    const name = path.slice(this.#prefix.length).split("/")[0]!;
    if (!WORKLOAD_NAME.test(name)) return [];
    // Every directory from <cgroupName> to the process's cgroup must be root's.
    const segs = path.split("/");
    for (let i = 1; i < segs.length; i++) {
      const dir = segs.slice(0, i + 1).join("/");
      let owner: number;
      try {
        const st = await this.#fs.stat(join(this.#mount, dir));
        owner = st.isDirectory ? st.uid : -1;
      } catch (cause) {
        throw new AttestError("attest_cgroup_untrusted", `attest: cgroup ${quote(dir)} of pid ${proc.pid} cannot be checked`, { cause });
      }
      if (owner !== 0) throw new AttestError("attest_cgroup_untrusted", `attest: cgroup ${quote(dir)} of pid ${proc.pid} is not owned by root (uid ${owner}): it cannot name workload ${quote(name)}`);
    }
    return [`tidegate:workload:${name}`];
  }
}
