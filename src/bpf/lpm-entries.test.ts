// The kernel's share as LPM entries: the /0 marker of each family, enclosing prefixes' rules carried
// by the longer ones, and what happens past 16 rules at one prefix.
import { describe, expect, test } from "bun:test";
import { parseCidr } from "../policy/address.ts";
import type { KernelEntry } from "../policy/kernel-share.ts";
import { lpmEntries, ShareError } from "./lpm-entries.ts";

const entry = (cidr: string, lo: number, hi: number, action: "deny" | "direct", rule: string, proto: "tcp" | "udp" = "tcp"): KernelEntry => ({ proto, cidr: parseCidr(cidr), portLo: lo, portHi: hi, action, rule });
const index = (name: string) => Number(name.replace(/\D/g, ""));
const show = (es: ReturnType<typeof lpmEntries>) => es.map((e) => `${e.cidr.text} ${e.rules.map((r) => `${r.portLo}-${r.portHi}/${r.proto}/${r.action}/#${r.ruleId}`).join(" ")}`.trim());

describe("lpm entries", () => {
  test("an empty share still marks the cgroup in both families", () => {
    expect(show(lpmEntries(7n, [], index, "w"))).toEqual(["0.0.0.0/0", "::/0"]);
    expect(lpmEntries(7n, [], index, "w").every((e) => e.cgroupId === 7n)).toBe(true);
  });
  test("a longer prefix carries the rules of the prefixes that enclose it", () => {
    const share = [entry("10.0.0.0/8", 22, 22, "deny", "r1"), entry("10.1.0.0/16", 53, 53, "direct", "r2"), entry("2001:db8::/32", 1, 65535, "deny", "r3")];
    expect(show(lpmEntries(7n, share, index, "w"))).toEqual([
      "0.0.0.0/0",
      "10.0.0.0/8 22-22/6/1/#1",
      "10.1.0.0/16 22-22/6/1/#1 53-53/6/2/#2",
      "::/0",
      "2001:db8::/32 1-65535/6/1/#3",
    ]);
  });
  test("a /0 rule is the marker entry itself and is carried by every longer prefix", () => {
    const share = [entry("0.0.0.0/0", 25, 25, "deny", "r1"), entry("10.0.0.0/8", 53, 53, "direct", "r2", "udp")];
    expect(show(lpmEntries(7n, share, index, "w"))).toEqual(["0.0.0.0/0 25-25/6/1/#1", "10.0.0.0/8 25-25/6/1/#1 53-53/17/2/#2", "::/0"]);
  });
  test("more than 16 rules at a prefix: TCP rules are left to the proxy", () => {
    const share = [...Array.from({ length: 15 }, (_, i) => entry("10.0.0.0/8", 100 + i, 100 + i, "deny", `r${i}`)), entry("10.1.0.0/16", 53, 53, "direct", "r90", "udp"), entry("10.1.0.0/16", 80, 80, "deny", "r91")];
    const out = lpmEntries(7n, share, index, "w");
    expect(out.find((e) => e.cidr.text === "10.0.0.0/8")!.rules).toHaveLength(15);
    expect(show(out).find((l) => l.startsWith("10.1.0.0/16"))).toBe("10.1.0.0/16 53-53/17/2/#90");
  });
  test("more than 16 UDP rules at a prefix: refused, naming the workload and the prefix", () => {
    const share = Array.from({ length: 17 }, (_, i) => entry("10.0.0.0/8", 100 + i, 100 + i, "direct", `r${i}`, "udp"));
    expect(() => lpmEntries(7n, share, index, "w1")).toThrow(ShareError);
    expect(() => lpmEntries(7n, share, index, "w1")).toThrow(/workload "w1": 17 udp rules apply to 10\.0\.0\.0\/8/);
  });
});
