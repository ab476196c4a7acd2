import { describe, expect, test } from "bun:test";
import { placesFor, validateInstanceName } from "./instance.ts";

describe("placesFor", () => {
  test("the default instance uses DESIGN.md's places", () => {
    expect(placesFor(null)).toEqual({
      instance: null,
      config: "/etc/tidegate/tidegate.yaml",
      serverConfig: "/etc/tidegate/server.yaml",
      stateDir: "/var/lib/tidegate",
      runDir: "/run/tidegate",
      bpfPinDir: "/sys/fs/bpf/tidegate",
      cgroupName: "tidegate",
      auditDir: "/var/log/tidegate",
    });
  });

  test("an instance suffixes every place, the cgroup and the pins", () => {
    const p = placesFor("t1");
    for (const v of [p.config, p.serverConfig, p.stateDir, p.runDir, p.bpfPinDir, p.cgroupName, p.auditDir]) {
      expect(v).toContain("tidegate-t1");
    }
  });

  test("a per-place flag overrides only its place", () => {
    const p = placesFor("t1", { stateDir: "/tmp/s" });
    expect(p.stateDir).toBe("/tmp/s");
    expect(p.runDir).toBe("/run/tidegate-t1");
  });
});

describe("validateInstanceName", () => {
  test.each(["a", "t1", "e2e-server-3", "a".repeat(32)])("accepts %p", (n) => {
    expect(validateInstanceName(n)).toBe(n);
  });
  test.each(["", "-a", "a-", "A", "a_b", "a/b", "..", "a.b", "a b", "a".repeat(33), "x\n"])("rejects %p", (n) => {
    expect(() => validateInstanceName(n)).toThrow(expect.objectContaining({ code: "instance_bad_name" }));
  });
});
