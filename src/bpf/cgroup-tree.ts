/**
 * The instance's cgroup tree under the cgroup2 mount (DESIGN.md section 2; docs/attestation.md):
 *
 *     <mount>/<cgroupName>/                     the programs attach here; the agent is never inside
 *     <mount>/<cgroupName>/workloads/<NAME>/    one cgroup per workload NAME, root-owned, 0755
 *
 * A cgroup's id, as `bpf_get_current_cgroup_id()` returns it, is the inode number of its directory.
 * Guarantees: directories are made by root with mode 0755 (a workload cannot create a cgroup or
 * move itself: writing cgroup.procs needs write access to the common ancestor's cgroup.procs);
 * `removeAll` kills what is left first (cgroup.kill) and says how many processes that was.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, statSync, writeFileSync, chmodSync } from "node:fs";
import { join } from "node:path";
import { TidegateError } from "../errors.ts";
import { WORKLOAD_NAME } from "../attest/tidegate.ts";

export class CgroupError extends TidegateError<"cgroup_unavailable" | "cgroup_bad_workload" | "cgroup_io" | "cgroup_lost"> {}

export class CgroupTree {
  readonly mount: string;
  readonly root: string;

  constructor(mount: string, cgroupName: string) {
    this.mount = mount;
    this.root = join(mount, cgroupName);
  }

  /** Creates the root and `workloads/` (idempotent). */
  ensure(): void {
    for (const dir of [this.root, join(this.root, "workloads")]) {
      try {
        mkdirSync(dir, { recursive: true });
        chmodSync(dir, 0o755);
      } catch (e) {
        throw new CgroupError("cgroup_io", `cgroup: cannot create ${dir}: ${(e as { code?: string }).code ?? String(e)}`);
      }
    }
  }

  workloadDir(name: string): string {
    if (!WORKLOAD_NAME.test(name)) throw new CgroupError("cgroup_bad_workload", `cgroup: workload name ${JSON.stringify(name.slice(0, 64))} is not 1-63 of [A-Za-z0-9._-]`);
    return join(this.root, "workloads", name);
  }

  /** The root's cgroup id when the programs were attached to it (Capture sets it); null: not checked. */
  attachedRootId: bigint | null = null;

  /**
   * The workload's cgroup, made if absent; returns its id. The root is never made here: when the
   * programs were attached to a root that is gone or replaced (someone ran `agent --uninstall`
   * while the agent ran), a workload made under a new root would run with nothing attached, so
   * that is refused (`cgroup_lost`) instead: fail closed.
   */
  ensureWorkload(name: string): { dir: string; id: bigint } {
    let rootId: bigint | null = null;
    try {
      rootId = cgroupId(this.root);
    } catch {
      rootId = null;
    }
    if (rootId === null || (this.attachedRootId !== null && rootId !== this.attachedRootId)) {
      throw new CgroupError("cgroup_lost", `cgroup: ${this.root}, where tidegate's programs were attached, is ${rootId === null ? "gone" : "a different cgroup now"}: nothing would enforce a workload there; restart the agent`);
    }
    const base = join(this.root, "workloads");
    if (!existsSync(base)) {
      try {
        mkdirSync(base);
        chmodSync(base, 0o755);
      } catch (e) {
        if ((e as { code?: string }).code !== "EEXIST") throw new CgroupError("cgroup_io", `cgroup: cannot create ${base}: ${(e as { code?: string }).code ?? String(e)}`);
      }
    }
    const dir = this.workloadDir(name);
    if (!existsSync(dir)) {
      try {
        mkdirSync(dir);
        chmodSync(dir, 0o755);
      } catch (e) {
        if ((e as { code?: string }).code !== "EEXIST") throw new CgroupError("cgroup_io", `cgroup: cannot create ${dir}: ${(e as { code?: string }).code ?? String(e)}`);
      }
    }
    return { dir, id: cgroupId(dir) };
  }

  /** Workload names with a cgroup now, and their ids. */
  workloads(): Map<string, bigint> {
    const out = new Map<string, bigint>();
    const base = join(this.root, "workloads");
    if (!existsSync(base)) return out;
    for (const d of readdirSync(base, { withFileTypes: true })) {
      if (d.isDirectory() && WORKLOAD_NAME.test(d.name)) out.set(d.name, cgroupId(join(base, d.name)));
    }
    return out;
  }

  /** True while a process is in the cgroup or below it. */
  populated(dir: string): boolean {
    try {
      return /^populated 1$/m.test(readFileSync(join(dir, "cgroup.events"), "utf8"));
    } catch {
      return false;
    }
  }

  /** Removes an empty workload cgroup; false when a process is still in it. */
  removeWorkload(name: string): boolean {
    const dir = this.workloadDir(name);
    if (!existsSync(dir)) return true;
    try {
      rmdirSync(dir);
      return true;
    } catch (e) {
      if ((e as { code?: string }).code === "EBUSY") return false;
      throw new CgroupError("cgroup_io", `cgroup: cannot remove ${dir}: ${(e as { code?: string }).code ?? String(e)}`);
    }
  }

  /** Kills every process in the tree (cgroup.kill), waits for them to go, removes every cgroup. Returns how many were killed. */
  async removeAll(timeoutMs = 5000): Promise<number> {
    if (!existsSync(this.root)) return 0;
    const killed = countProcs(this.root);
    if (killed > 0) writeFileSync(join(this.root, "cgroup.kill"), "1");
    const deadline = Date.now() + timeoutMs;
    while (this.populated(this.root) && Date.now() < deadline) await Bun.sleep(10);
    for (const dir of walkDepthFirst(this.root)) {
      try {
        rmdirSync(dir);
      } catch (e) {
        throw new CgroupError("cgroup_io", `cgroup: cannot remove ${dir}: ${(e as { code?: string }).code ?? String(e)}`);
      }
    }
    return killed;
  }
}

export function cgroupId(dir: string): bigint {
  return statSync(dir, { bigint: true }).ino;
}

function countProcs(dir: string): number {
  let n = 0;
  for (const d of walkDepthFirst(dir)) {
    try {
      n += readFileSync(join(d, "cgroup.procs"), "utf8").split("\n").filter((l) => l !== "").length;
    } catch {
      // gone meanwhile
    }
  }
  return n;
}

/** Children before parents. */
function walkDepthFirst(dir: string): string[] {
  const out: string[] = [];
  for (const d of readdirSync(dir, { withFileTypes: true })) if (d.isDirectory()) out.push(...walkDepthFirst(join(dir, d.name)));
  out.push(dir);
  return out;
}
