import { describe, expect, test } from "bun:test";
import { loadPolicy } from "../policy/index.ts";
import { planEntries, wantedEntries } from "./entries.ts";

const policy = loadPolicy(
  `trust_domain: example.org
workloads:
  - { name: web, id: spiffe://example.org/web, selectors: ["unix:uid:1001", "unix:uid:1001"] }
  - { name: mcp, id: spiffe://example.org/mcp }
`,
  "t.yaml",
);

describe("wantedEntries", () => {
  test("each workload's selectors plus the implied tidegate:workload:NAME, sorted and unique", () => {
    expect(wantedEntries(policy.workloads)).toEqual([
      { spiffeId: "spiffe://example.org/web", selectors: ["tidegate:workload:web", "unix:uid:1001"] },
      { spiffeId: "spiffe://example.org/mcp", selectors: ["tidegate:workload:mcp"] },
    ]);
  });
  test("an inbound listener's id gets an entry that only the agent holds: tidegate:inbound:RULE, one per id; a workload's id none", () => {
    const p = loadPolicy(
      `trust_domain: example.org
workloads:
  - { name: mcp, id: spiffe://example.org/mcp }
inbound:
  - { name: reports-b, id: spiffe://example.org/svc/reports, listen: 127.0.0.1:9444, forward: 127.0.0.1:3001, allow: spiffe://example.org/mcp }
  - { name: reports-a, id: spiffe://example.org/svc/reports, listen: 127.0.0.1:9443, forward: 127.0.0.1:3000, allow: spiffe://example.org/mcp }
  - { name: mcp-in, id: spiffe://example.org/mcp, listen: 127.0.0.1:9445, forward: 127.0.0.1:3002, allow: spiffe://example.org/mcp }
`,
      "i.yaml",
    );
    expect(wantedEntries(p.workloads, p.inbound)).toEqual([
      { spiffeId: "spiffe://example.org/mcp", selectors: ["tidegate:workload:mcp"] },
      { spiffeId: "spiffe://example.org/svc/reports", selectors: ["tidegate:inbound:reports-a", "tidegate:inbound:reports-b"] },
    ]);
  });
});

describe("planEntries", () => {
  const wanted = wantedEntries(policy.workloads);
  test("nothing there: every workload is created, nothing removed", () => {
    expect(planEntries(wanted, [], new Set())).toEqual({ create: wanted, remove: [], keep: [] });
  });
  test("equal entries are kept whoever made them, whatever the selector order", () => {
    const existing = [
      { id: "a", spiffe_id: "spiffe://example.org/web", selectors: ["unix:uid:1001", "tidegate:workload:web"] },
      { id: "b", spiffe_id: "spiffe://example.org/mcp", selectors: ["tidegate:workload:mcp"] },
    ];
    expect(planEntries(wanted, existing, new Set(["a"]))).toEqual({ create: [], remove: [], keep: ["a", "b"] });
  });
  test("a changed workload: our old entry is removed and the new one created", () => {
    const existing = [{ id: "a", spiffe_id: "spiffe://example.org/web", selectors: ["tidegate:workload:web", "unix:uid:1000"] }];
    const plan = planEntries(wanted, existing, new Set(["a"]));
    expect(plan.remove).toEqual(["a"]);
    expect(plan.create.map((w) => w.spiffeId)).toEqual(["spiffe://example.org/web", "spiffe://example.org/mcp"]);
  });
  test("an operator's entry that no workload names is never removed", () => {
    const existing = [{ id: "op", spiffe_id: "spiffe://example.org/host-app", selectors: ["unix:uid:1000"] }];
    expect(planEntries(wanted, existing, new Set()).remove).toEqual([]);
  });
  test("a workload dropped from the config: the entry up made goes", () => {
    const existing = [{ id: "old", spiffe_id: "spiffe://example.org/gone", selectors: ["tidegate:workload:gone"] }];
    expect(planEntries(wanted, existing, new Set(["old"])).remove).toEqual(["old"]);
  });
});
