import { expect, test } from "bun:test";
import { findCgroup2, parseMounts } from "./host.ts";

const HYBRID = `sysfs /sys sysfs rw 0 0
tmpfs /sys/fs/cgroup tmpfs ro 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nsdelegate 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0
bpf /sys/fs/bpf bpf rw 0 0
`;

test("finds cgroup2 on a hybrid host at /sys/fs/cgroup/unified", () => {
  expect(findCgroup2(parseMounts(HYBRID))).toBe("/sys/fs/cgroup/unified");
});

test("prefers the unified /sys/fs/cgroup when it is cgroup2", () => {
  const m = parseMounts("cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\ncgroup2 /mnt/x\\040y cgroup2 rw 0 0\n");
  expect(findCgroup2(m)).toBe("/sys/fs/cgroup");
  expect(m[1]!.target).toBe("/mnt/x y");
});

test("reports no cgroup2 when only v1 is mounted", () => {
  expect(findCgroup2(parseMounts("cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\n"))).toBeNull();
});
