// The cgroup tree on the real cgroup v2 mount (root; CI runs it): a workload's cgroup is never
// made under a root other than the one the programs were attached to.
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, rmdirSync } from "node:fs";
import { join } from "node:path";
import { probeHost } from "../runtime/host.ts";
import { CgroupTree, cgroupId } from "./cgroup-tree.ts";
import { codeOf } from "../../test/shim.ts";

const mount = probeHost().cgroup2;
const can = process.getuid?.() === 0 && mount !== null;
if (!can && !process.env.CI) console.warn("cgroup-tree: skipped (needs root and cgroup v2)");
const NAME = "tidegate-test-cgtree";

function removeTree(): void {
  if (mount === null) return;
  const root = join(mount, NAME);
  for (const d of [join(root, "workloads", "w"), join(root, "workloads"), root]) if (existsSync(d)) rmdirSync(d);
}

describe.skipIf(!can)("CgroupTree.ensureWorkload", () => {
  afterAll(removeTree);

  test("makes the workload under the attached root, and refuses once that root is gone or replaced", () => {
    removeTree();
    const tree = new CgroupTree(mount!, NAME);
    tree.ensure();
    tree.attachedRootId = cgroupId(tree.root);
    const w = tree.ensureWorkload("w");
    expect(existsSync(w.dir)).toBe(true);
    removeTree();
    expect(codeOf(() => tree.ensureWorkload("w"))).toBe("cgroup_lost");
    expect(existsSync(tree.root)).toBe(false); // not recreated: a new root would have nothing attached
    mkdirSync(tree.root);
    expect(codeOf(() => tree.ensureWorkload("w"))).toBe("cgroup_lost");
  });
});
