import { describe, expect, test } from "bun:test";
import { loadPolicy } from "../policy/index.ts";
import { nodeNameFor, resolversOf, starterConfig, trustDomainFor } from "./starter-config.ts";

const at = new Date("2026-11-27T00:00:00Z");

describe("resolversOf", () => {
  test("takes nameserver lines in order, once each, and drops zone ids", () => {
    const text = "# comment\nsearch example.org\nnameserver 10.0.0.53\n  nameserver   fe80::1%eth0\nnameserver 10.0.0.53\nnameserver 2001:db8::53\n";
    expect(resolversOf(text)).toEqual(["10.0.0.53", "fe80::1", "2001:db8::53"]);
  });
  test("ignores what is not an address, and commented lines", () => {
    expect(resolversOf("nameserver resolver.local\n#nameserver 10.0.0.1\nnameserver 300.1.1.1\n")).toEqual([]);
  });
});

describe("trustDomainFor and nodeNameFor", () => {
  test("the host's first label, lowercased, with unsafe characters replaced", () => {
    expect(trustDomainFor("Build_Box.corp.example")).toBe("build-box.internal");
    expect(nodeNameFor("Build_Box.corp.example")).toBe("build_box");
  });
  test("an empty or unusable host name falls back", () => {
    expect(trustDomainFor("")).toBe("local.internal");
    expect(trustDomainFor("---")).toBe("local.internal");
    expect(nodeNameFor("...")).toBe("local");
  });
});

describe("starterConfig", () => {
  test("loads as a policy: the trust domain, no workloads, the resolvers allowed and nothing else", () => {
    const text = starterConfig({ trustDomain: "box.internal", resolvers: ["10.0.0.53", "2001:db8::53"], writtenAt: at });
    const p = loadPolicy(text, "starter.yaml");
    expect(p.trustDomain.name).toBe("box.internal");
    expect(p.workloads).toEqual([]);
    expect(p.egress.map((r) => [r.name, r.action])).toEqual([
      ["resolver-1-udp", "direct"],
      ["resolver-1-tcp", "direct"],
      ["resolver-2-udp", "direct"],
      ["resolver-2-tcp", "direct"],
    ]);
    expect(p.inbound).toEqual([]);
    expect(p.stdio).toEqual([]);
    expect(text).toContain("DEFAULT DENY");
    expect(text).toContain("2026-11-27");
  });
  test("one resolver gets plain names; none gets an empty egress list that still loads", () => {
    expect(loadPolicy(starterConfig({ trustDomain: "a.internal", resolvers: ["127.0.0.53"], writtenAt: at }), "s.yaml").egress.map((r) => r.name)).toEqual(["resolver-udp", "resolver-tcp"]);
    const none = starterConfig({ trustDomain: "a.internal", resolvers: [], writtenAt: at });
    expect(loadPolicy(none, "s.yaml").egress).toEqual([]);
    expect(none).toContain("no nameserver found");
  });
  test("the commented example rule loads when uncommented", () => {
    const text = starterConfig({ trustDomain: "box.internal", resolvers: [], writtenAt: at })
      .replace("workloads: []\n#  - name: github-mcp\n#    id: spiffe://box.internal/mcp/github\n#    user: nobody", "workloads:\n  - name: github-mcp\n    id: spiffe://box.internal/mcp/github\n    user: nobody")
      .replace("egress: []", "egress:")
      .split("\n")
      .map((l) => (/^ {2}# (- name| {2}[a-z]+:)/.test(l) ? `  ${l.slice(4)}`.replace(/ {3}# .*$/, "") : l))
      .join("\n");
    const p = loadPolicy(text, "s.yaml");
    expect(p.workloads.map((w) => w.name)).toEqual(["github-mcp"]);
    const rule = p.egress.find((r) => r.name === "github-api");
    expect(rule?.action).toBe("intercept");
  });
});
