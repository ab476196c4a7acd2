/**
 * The cgroup attestor: `cgroup:path:<v2 path>`, and from that path `container:id:<64 hex>` and
 * `k8s:pod-uid:<uid>` (cgroup-path.ts says which shapes).
 *
 * Guarantee: a container id or pod UID is only given when the cgroup directory that names it is
 * owned by root. A rootless runtime's cgroups (and any a user makes in a delegated subtree) are
 * the user's, who could name one after another container: those yield no container or pod
 * selector (never an error: fewer selectors never grant an identity a process would not get
 * anyway as that user). `cgroup:path` is always given: it is where the process is.
 */
import { join } from "node:path";
import type { ProcessRef, WorkloadAttestor } from "./attestor.ts";
import { parseCgroupPath } from "./cgroup-path.ts";
import type { ProcFs } from "./proc-fs.ts";
import { parseCgroupV2 } from "./proc-text.ts";

export class CgroupAttestor implements WorkloadAttestor {
  readonly name = "cgroup";
  readonly #fs: ProcFs;
  readonly #mount: string;

  /** `mount` is the cgroup2 mount point (probeHost().cgroup2). */
  constructor(fs: ProcFs, mount: string) {
    this.#fs = fs;
    this.#mount = mount;
  }

  async attest(proc: ProcessRef): Promise<string[]> {
    const path = parseCgroupV2(await this.#fs.readText(`/proc/${proc.pid}/cgroup`), `/proc/${proc.pid}/cgroup`);
    if (path === null) return [];
    const out = [`cgroup:path:${path}`];
    const info = parseCgroupPath(path);
    if (info.container !== null && (await this.#rootOwned(info.container.dir))) out.push(`container:id:${info.container.value}`);
    if (info.pod !== null && (await this.#rootOwned(info.pod.dir))) out.push(`k8s:pod-uid:${info.pod.value}`);
    return out;
  }

  #rootOwned(dir: string): Promise<boolean> {
    return rootOwnedCgroup(this.#fs, this.#mount, dir);
  }
}

/**
 * Whether cgroup `dir` (relative to the cgroup2 mount) is a directory owned by root: only such
 * cgroups may name a container or pod (a user's delegated subtree could be named anything).
 */
export async function rootOwnedCgroup(fs: ProcFs, mount: string, dir: string): Promise<boolean> {
  try {
    const st = await fs.stat(join(mount, dir));
    return st.isDirectory && st.uid === 0;
  } catch {
    return false;
  }
}
