// Real-world cgroup v2 path shapes of each runtime, with the systemd and cgroupfs drivers.
import { describe, expect, test } from "bun:test";
import { parseCgroupPath } from "./cgroup-path.ts";
import { AttestError } from "./errors.ts";

const ID = "8a1d3ecbe7e0f2b4a5c9d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b";
const ID2 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const UID = "2c9b4a6e-1f3d-4e5a-9b7c-0d1e2f3a4b5c";
const UID_ = UID.replaceAll("-", "_");
const STATIC = "6ec25ac4f7d54b1f8a2bd8e1c1c17f41";

type Row = [string, string, string | null, string | null];
const table: Row[] = [
  // docker
  ["docker, systemd", `/system.slice/docker-${ID}.scope`, ID, null],
  ["docker, cgroupfs", `/docker/${ID}`, ID, null],
  ["docker, rootless", `/user.slice/user-1000.slice/user@1000.service/docker-${ID}.scope`, ID, null],
  ["docker in k8s, systemd", `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/docker-${ID}.scope`, ID, UID],
  ["docker in k8s, cgroupfs", `/kubepods/burstable/pod${UID}/${ID}`, ID, UID],
  // containerd
  ["containerd CRI, systemd, burstable", `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/cri-containerd-${ID}.scope`, ID, UID],
  ["containerd CRI, systemd, besteffort", `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice/cri-containerd-${ID}.scope`, ID, UID],
  ["containerd CRI, systemd, guaranteed", `/kubepods.slice/kubepods-pod${UID_}.slice/cri-containerd-${ID}.scope`, ID, UID],
  ["containerd CRI, cgroupfs, besteffort", `/kubepods/besteffort/pod${UID}/${ID}`, ID, UID],
  ["containerd CRI, cgroupfs, guaranteed", `/kubepods/pod${UID}/${ID}`, ID, UID],
  ["containerd, kind node (nested kubelet.slice)", `/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod${UID_}.slice/cri-containerd-${ID}.scope`, ID, UID],
  ["containerd ctr, cgroupfs namespace", `/default/${ID}`, ID, null],
  ["static pod (32 hex uid), systemd", `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${STATIC}.slice/cri-containerd-${ID}.scope`, ID, STATIC],
  ["static pod (32 hex uid), cgroupfs", `/kubepods/burstable/pod${STATIC}/${ID}`, ID, STATIC],
  ["pod slice only (the pod's own cgroup)", `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice`, null, UID],
  // cri-o
  ["cri-o, systemd", `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/crio-${ID}.scope`, ID, UID],
  ["cri-o, systemd, container sub-cgroup", `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/crio-${ID}.scope/container`, ID, UID],
  ["cri-o conmon, systemd (the monitor, not the container)", `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/crio-conmon-${ID}.scope`, null, UID],
  ["cri-o, cgroupfs", `/kubepods/burstable/pod${UID}/crio-${ID}`, ID, UID],
  ["cri-o conmon, cgroupfs", `/kubepods/burstable/pod${UID}/crio-conmon-${ID}`, null, UID],
  // podman
  ["podman rootful, systemd", `/machine.slice/libpod-${ID}.scope`, ID, null],
  ["podman with systemd inside", `/machine.slice/libpod-${ID}.scope/container`, ID, null],
  ["podman rootless", `/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-${ID}.scope`, ID, null],
  ["podman conmon", `/machine.slice/libpod-conmon-${ID}.scope`, null, null],
  ["podman, cgroupfs", `/libpod_parent/libpod-${ID}`, ID, null],
  ["podman pod, systemd", `/machine.slice/machine-libpod_pod_${ID2}.slice/libpod-${ID}.scope`, ID, null],
  // nested runtimes: the innermost container
  ["docker in docker", `/docker/${ID2}/docker/${ID}`, ID, null],
  // nothing
  ["a login session", "/user.slice/user-1000.slice/session-3.scope", null, null],
  ["the root", "/", null, null],
  ["a service", "/system.slice/sshd.service", null, null],
  ["63 hex is no id", `/docker/${ID.slice(1)}`, null, null],
  ["upper-case hex is no id", `/docker/${ID.toUpperCase()}`, null, null],
  ["pod segment outside kubepods", `/system.slice/pod${UID}/${ID}`, ID, null],
  ["docker- prefix without .scope", `/system.slice/docker-${ID}`, null, null],
];

describe("parseCgroupPath", () => {
  for (const [name, path, container, pod] of table) {
    test(name, () => {
      const info = parseCgroupPath(path);
      expect(info.container?.value ?? null).toBe(container);
      expect(info.pod?.value ?? null).toBe(pod);
    });
  }

  test("gives the directory that named the container and the pod", () => {
    const info = parseCgroupPath(`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/crio-${ID}.scope/container`);
    expect(info.container?.dir).toBe(`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/crio-${ID}.scope`);
    expect(info.pod?.dir).toBe(`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice`);
  });

  test("two different pods in one path: attest_cgroup_conflict", () => {
    const other = "11111111-2222-3333-4444-555555555555";
    let err: unknown;
    try {
      parseCgroupPath(`/kubepods/pod${UID}/kubepods/pod${other}/${ID}`);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AttestError);
    expect((err as AttestError).code).toBe("attest_cgroup_conflict");
  });
});
