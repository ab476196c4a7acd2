// Every selector the attestors give passes selector.ts's check, so an entry or a policy naming it
// is never refused: the unix attestor over arbitrary ids, names and paths, the cgroup attestor over
// every cgroup shape of cgroup-path.test.ts, the tidegate attestor over workload names, and the
// kubelet's selectors of every pod and container of the stand-in kubelet's pod list.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { fuzzRuns } from "../../test/fuzz-runs.ts";
import { FakeProcFs } from "./fake-proc-fs.ts";
import { UnixAttestor } from "./unix.ts";
import { CgroupAttestor } from "./cgroup.ts";
import { TidegateAttestor } from "./tidegate.ts";
import { findContainer, indexPodList, podSelectors } from "./kubelet-pods.ts";
import { latePod, otherPods, webPod } from "./test-kubelet.ts";
import { selectorProblem, SELECTOR_KEYS } from "./selector.ts";

const problems = (selectors: readonly string[]) => selectors.map((s) => [s, selectorProblem(s)]).filter(([, why]) => why !== null);

const ID = "8a1d3ecbe7e0f2b4a5c9d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b";
const UID = "2c9b4a6e-1f3d-4e5a-9b7c-0d1e2f3a4b5c";
const STATIC = "6ec25ac4f7d54b1f8a2bd8e1c1c17f41";
/** The shapes docs/attestation.md lists ("Container and pod ids in cgroup paths"). */
const CGROUPS = [
  "/user.slice/user-1000.slice/session-2.scope",
  "/",
  `/system.slice/docker-${ID}.scope`,
  `/docker/${ID}`,
  `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID.replaceAll("-", "_")}.slice/cri-containerd-${ID}.scope`,
  `/kubepods/besteffort/pod${UID}/${ID}`,
  `/kubepods/pod${STATIC}/crio-${ID}`,
  `/machine.slice/libpod-${ID}.scope/container`,
  `/libpod_parent/libpod-${ID}`,
  "/tidegate/workloads/web",
  "/tidegate-x/workloads/a.b_c-9/sub",
];

/** A cgroup tree every directory of which is root's, so the attestors give every selector they can. */
function rootCgroups(fs: FakeProcFs, path: string): void {
  const segs = path.split("/");
  for (let i = 1; i < segs.length; i++) fs.set(`/sys/fs/cgroup${segs.slice(0, i + 1).join("/")}`, { stat: { isDirectory: true, uid: 0 } });
}

describe("every selector an attestor gives passes the check", () => {
  test("the unix attestor: any ids, account names and executable paths", async () => {
    const id = fc.integer({ min: 0, max: 0xffffffff });
    const name = fc.stringMatching(/^[a-z_][a-z0-9_.-]{0,31}\$?$/);
    // a path as readlink gives it; control characters are refused by every selector check
    const path = fc.stringMatching(/^(?:\/[^\u0000-\u001f\u007f/]{1,20}){1,4}$/);
    await fc.assert(
      fc.asyncProperty(fc.tuple(id, id, id, id), fc.tuple(id, id), fc.array(id, { maxLength: 4 }), name, name, path, fc.boolean(), async (uids, gids, groups, user, group, exe, deleted) => {
        const passwd = `${user}:x:${uids[1]}:${gids[1]}::/:/bin/sh\n`;
        const groupFile = `${group}:x:${gids[1]}:\n${groups.map((g, i) => `g${i}:x:${g}:`).join("\n")}\n`;
        const fs = new FakeProcFs()
          .set("/etc/passwd", { text: passwd, stat: { ino: 7n } })
          .set("/etc/group", { text: groupFile, stat: { ino: 8n } })
          .addProcess({ pid: 10, uids, gids: [gids[0], gids[1], gids[0], gids[0]], groups, exePath: deleted ? `${exe} (deleted)` : exe, exeStat: { nlink: deleted ? 0 : 1 } });
        const got = await new UnixAttestor(fs).attest({ pid: 10, startTime: 1000 });
        expect(got.length).toBeGreaterThan(4);
        expect(problems(got)).toEqual([]);
      }),
      { numRuns: fuzzRuns(200) },
    );
  });

  test("the cgroup and tidegate attestors: every cgroup shape, and any workload name", async () => {
    const seen = new Set<string>();
    for (const [i, path] of CGROUPS.entries()) {
      const fs = new FakeProcFs().addProcess({ pid: 20 + i, cgroup: path });
      rootCgroups(fs, path);
      const prefix = path.startsWith("/tidegate-x/") ? "tidegate-x" : "tidegate";
      const got = [...(await new CgroupAttestor(fs, "/sys/fs/cgroup").attest({ pid: 20 + i, startTime: 1000 })), ...(await new TidegateAttestor(fs, "/sys/fs/cgroup", prefix).attest({ pid: 20 + i, startTime: 1000 }))];
      expect(problems(got)).toEqual([]);
      for (const s of got) seen.add(s.split(":").slice(0, 2).join(":"));
    }
    expect([...seen].sort()).toEqual(["cgroup:path", "container:id", "k8s:pod-uid", "tidegate:workload"]);
    await fc.assert(
      fc.asyncProperty(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/), async (name) => {
        const path = `/tidegate/workloads/${name}`;
        const fs = new FakeProcFs().addProcess({ pid: 9, cgroup: path });
        rootCgroups(fs, path);
        const got = await new TidegateAttestor(fs, "/sys/fs/cgroup", "tidegate").attest({ pid: 9, startTime: 1000 });
        expect(got).toEqual([`tidegate:workload:${name}`]);
        expect(problems(got)).toEqual([]);
      }),
      { numRuns: fuzzRuns(200) },
    );
  });

  test("the kubelet attestor: every pod and container of the stand-in kubelet's list", () => {
    const pods = [webPod(), ...otherPods(), latePod()] as { metadata: { uid: string }; status?: { containerStatuses?: { containerID?: string }[]; initContainerStatuses?: { containerID?: string }[] } }[];
    const index = indexPodList({ kind: "PodList", apiVersion: "v1", metadata: {}, items: pods });
    const keys = new Set<string>();
    let containers = 0;
    for (const pod of pods) {
      for (const c of [...(pod.status?.containerStatuses ?? []), ...(pod.status?.initContainerStatuses ?? [])]) {
        if (c.containerID === undefined) continue;
        const found = findContainer(index, pod.metadata.uid, c.containerID.slice(c.containerID.indexOf("://") + 3));
        if (found.kind !== "found") continue;
        containers++;
        const got = podSelectors(found.pod, found.container);
        expect(problems(got)).toEqual([]);
        for (const s of got) keys.add(s.split(":").slice(0, 2).join(":"));
      }
    }
    expect(containers).toBeGreaterThan(3);
    // the list's pods exercise every k8s key the check knows
    expect([...keys].sort()).toEqual(SELECTOR_KEYS.filter((k) => k.startsWith("k8s:")).sort());
  });
});
