import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { renderStatus } from "./status.ts";
import { main } from "./main.ts";
import type { AgentStatus } from "../agent/index.ts";

const NOW = Date.parse("2026-01-01T00:00:00Z");

const status: AgentStatus = {
  healthy: false,
  problems: ["entry e2 (spiffe://example.org/db): SVID expired at 2025-12-31T23:59:00.000Z"],
  node: "node-1",
  spiffe_id: "spiffe://example.org/tidegate/agent/node-1",
  trust_domain: "example.org",
  server: "https://10.0.0.1:8081",
  api: "https://10.0.0.1:8082",
  node_svid: { serial: "4a", expires_at: "2026-01-01T00:30:00.000Z", rotate_at: "2026-01-01T00:10:00.000Z", expired: false, renew_error: null },
  bundle: { sequence: 3, roots: ["ab".repeat(32)] },
  federation: [{ trust_domain: "partner.test", sequence: 7, roots: 2, expires_at: "2026-01-01T01:00:00.000Z", expired: false }],
  last_sync: "2025-12-31T23:58:00.000Z",
  sync: { error: "server_unreachable: agent: cannot reach https://10.0.0.1:8082: ConnectionRefused", next_at: "2026-01-01T00:00:30.000Z", failures: 4 },
  entries: [],
  svids: [{ entry_id: "e2", spiffe_id: "spiffe://example.org/db", serial: "7b", expires_at: "2025-12-31T23:59:00.000Z", rotate_at: "2025-12-31T23:30:00.000Z", expired: true }],
  audit: { dir: "/var/log/tidegate", healthy: true, error: null, seq: 42, on_failure: "refuse" },
};

describe("tidegate status screen", () => {
  test("names health and problems, node, server, expiries, rotation times, bundle, last sync", () => {
    const out = renderStatus(status, NOW);
    expect(out).toContain("audit          ok, 42 events, /var/log/tidegate\n");
    expect(out).toContain("health         UNHEALTHY (1 problem)\n  - entry e2 (spiffe://example.org/db): SVID expired at 2025-12-31T23:59:00.000Z\n");
    expect(out).toContain("node           node-1 (spiffe://example.org/tidegate/agent/node-1)");
    expect(out).toContain("federated      partner.test: sequence 7, 2 roots, trusted until ");
    expect(out).toContain("server         https://10.0.0.1:8081 (api https://10.0.0.1:8082)");
    expect(out).toContain("node SVID      serial 4a, expires 2026-01-01T00:30:00.000Z (in 30m)");
    expect(out).toContain("  renews       2026-01-01T00:10:00.000Z (in 10m)");
    expect(out).toContain("bundle         sequence 3, 1 root");
    expect(out).toContain("last sync      2025-12-31T23:58:00.000Z (2m ago); failing (4x): server_unreachable");
    expect(out).toContain("next try 2026-01-01T00:00:30.000Z (in 30s)");
    expect(out).toContain("    EXPIRED 2025-12-31T23:59:00.000Z (1m ago), rotates 2025-12-31T23:30:00.000Z (30m ago)");
  });

  test("shows capture, the policy in force and each inbound listener's state", () => {
    const out = renderStatus(
      {
        ...status,
        capture: {
          cgroup: "/sys/fs/cgroup/unified/tidegate",
          egress_port: 1001,
          policy: { file: "/etc/tidegate/tidegate.yaml", egress_rules: 4, generation: 2 },
          workloads: ["client", "crawler"],
          open_connections: { egress: 3, inbound: 0 },
          workload_connections: { max: 2, open: { client: 1, crawler: 2 } },
          inbound: [
            { rule: "mcp-in", listen: "0.0.0.0:8443", id: "spiffe://example.org/mcp", state: "listening" },
            { rule: "db-in", listen: "127.0.0.1:8444", id: "spiffe://example.org/db", state: "failed", detail: "EADDRINUSE" },
          ],
        },
      },
      NOW,
    );
    expect(out).toContain("capture        cgroup /sys/fs/cgroup/unified/tidegate, egress port 1001\n");
    expect(out).toContain("policy         /etc/tidegate/tidegate.yaml (generation 2, 4 egress rules)\n");
    expect(out).toContain("workloads      client, crawler\n  open         client 1, crawler 2 (AT THE BOUND: further connects fail with EPERM); at most 2 each (agent.max_connections_per_workload)\nconnections    3 open through the egress proxy, 0 through inbound listeners\n");
    expect(out).toContain("inbound listeners (2)\n  mcp-in on 0.0.0.0:8443 as spiffe://example.org/mcp: listening\n  db-in on 127.0.0.1:8444 as spiffe://example.org/db: failed (EADDRINUSE)\n");
    expect(renderStatus({ ...status, capture: { unavailable: "the agent runs without capture (--no-capture)" } }, NOW)).toContain("capture        off: the agent runs without capture (--no-capture)\n");
  });

  test("a config file that was saved and refused: said under the policy, with the error, and what stays in force", () => {
    const at = new Date(NOW - 5000).toISOString();
    const error = "policy: /etc/tidegate/tidegate.yaml:9: egress[0].action: want one of ...\u001b[2J";
    const capture = { cgroup: "/sys/fs/cgroup/unified/tidegate", egress_port: 1001, workloads: [], inbound: [], policy_rejected: { at, error } };
    const out = renderStatus({ ...status, capture: { ...capture, policy: { file: "/etc/tidegate/tidegate.yaml", egress_rules: 4, generation: 2 } } }, NOW);
    expect(out).toContain(`policy         /etc/tidegate/tidegate.yaml (generation 2, 4 egress rules)\n  REFUSED      the file as saved ${at} (5s ago): policy: /etc/tidegate/tidegate.yaml:9: egress[0].action: want one of ...?[2J\n  the policy of generation 2 stays in force until the file loads ('tidegate policy check' it)\n`);
    const none = renderStatus({ ...status, capture: { ...capture, policy: null } }, NOW);
    expect(none).toContain("  no policy is in force until the file loads");
    expect(renderStatus({ ...status, capture: { ...capture, policy_rejected: null, policy: null } }, NOW)).not.toContain("REFUSED");
  });

  test("shows each rule's hits since the policy generation, the unmatched, and the recent denies newest first, one line each", () => {
    const deny = (i: number, extra: object = {}) => ({ time: new Date(NOW - (20 - i) * 1000).toISOString(), side: "egress" as const, source: "proxy" as const, kind: "connection" as const, caller: "spiffe://example.org/client", pid: 4000 + i, workload: "client", destination: `127.0.0.5:80 (api.example.test)`, rule: null, reason: "no_rule", ...extra });
    const capture = {
      cgroup: "/sys/fs/cgroup/unified/tidegate",
      egress_port: 1001,
      policy: { file: "/etc/tidegate/tidegate.yaml", egress_rules: 2, generation: 3 },
      workloads: ["client"],
      inbound: [],
      hits_since: { generation: 3, at: "2025-12-31T23:55:00.000Z" },
      rules: [
        { name: "blocked", side: "egress" as const, action: "deny", line: 4, hits: 4, connections: 4, requests: 0, denied: 4 },
        { name: "github-api", side: "egress" as const, action: "intercept", line: 8, hits: 13, connections: 1, requests: 12, denied: 2 },
        { name: "mcp-in", side: "inbound" as const, action: null, line: 14, hits: 0, connections: 0, requests: 0, denied: 0 },
        { name: "fs-readers", side: "stdio" as const, action: null, line: 20, hits: 1, connections: 0, requests: 1, denied: 1 },
      ],
      unmatched: { connections: 2, requests: 0, kernel: 1 },
      // newest first, as the agent sends them: 12 of them, 10 shown
      recent_denies: [
        deny(19, { source: "kernel", caller: null, destination: "10.0.0.9:5432", rule: "blocked", reason: "rule" }),
        deny(18, { kind: "request", destination: "DELETE api.github.com/repos/x\u001b[2J", rule: "github-api", reason: "rule" }),
        deny(17, { side: "inbound", pid: null, caller: "spiffe://example.org/intruder", destination: "127.0.0.1:9443", rule: "mcp-in", reason: "client_not_allowed" }),
        ...Array.from({ length: 9 }, (_, i) => deny(16 - i)),
      ],
    };
    const out = renderStatus({ ...status, capture }, NOW);
    expect(out).toContain(
      [
        "rules (since generation 3, 2025-12-31T23:55:00.000Z (5m ago))",
        "  RULE               ACTION     HITS  CONNECTIONS  REQUESTS  DENIED",
        "  blocked            deny          4            4         0       4",
        "  github-api         intercept    13            1        12       2",
        "  mcp-in             inbound       0            0         0       0",
        "  fs-readers         stdio         1            0         1       1",
        "  (no rule)                        2            2         0       2",
        "  (kernel, no rule)                1            1         0       1",
        "recent denies (10 of 12, newest first)",
        "  2025-12-31T23:59:59.000Z (1s ago)  unidentified pid 4019 -> 10.0.0.9:5432: rule blocked, rule (kernel)",
        "  2025-12-31T23:59:58.000Z (2s ago)  spiffe://example.org/client pid 4018 -> DELETE api.github.com/repos/x?[2J: rule github-api, rule",
        "  2025-12-31T23:59:57.000Z (3s ago)  spiffe://example.org/intruder -> 127.0.0.1:9443: rule mcp-in, client_not_allowed",
        "  2025-12-31T23:59:56.000Z (4s ago)  spiffe://example.org/client pid 4016 -> 127.0.0.5:80 (api.example.test): no rule, no_rule",
      ].join("\n") + "\n",
    );
    const denyLines = out.split("\n").filter((l) => / -> /.test(l));
    expect(denyLines).toHaveLength(10);
    expect(denyLines.at(-1)).toContain("pid 4010 ->");
    expect(out).not.toContain("\u001b");
    expect(renderStatus({ ...status, capture: { ...capture, recent_denies: [] } }, NOW)).toContain("\nrecent denies  none\n");
    expect(renderStatus({ ...status, capture: { ...capture, recent_denies: capture.recent_denies.slice(0, 2) } }, NOW)).toContain("\nrecent denies (2, newest first)\n");
  });

  test("with no policy loaded the rules table says so", () => {
    const out = renderStatus({ ...status, capture: { cgroup: "/sys/fs/cgroup/tidegate", egress_port: 1001, policy: null, workloads: [], inbound: [], hits_since: { generation: 0, at: "2026-01-01T00:00:00.000Z" }, rules: [], unmatched: { connections: 1, requests: 0, kernel: 0 }, recent_denies: [] } }, NOW);
    expect(out).toContain("rules (since generation 0, 2026-01-01T00:00:00.000Z (in 0s))\n  none: no policy is loaded\n  RULE ");
    expect(out).toContain("  (no rule)                     1            1         0       1\n");
  });
});

describe("tidegate status with no agent", () => {
  test("exit 1 with a code, naming the socket and how to start an agent", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tidegate-uxcli-status-"));
    try {
      let err = "";
      const code = await main(["status", "--instance", "uxcli", "--run-dir", dir], { out: () => undefined, err: (t) => void (err += t) }, {});
      expect(code).toBe(1);
      expect(err).toBe(`tidegate status: the agent is not running: nothing answers on ${join(dir, "agent.sock")}; start it with 'tidegate up' (single host) or 'tidegate agent' [agent_not_running]\n`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a socket that cannot be reached for another reason is said as it is, not as no agent", async () => {
    // a path over the 108 bytes a Unix socket's address holds: the connect fails, but not because nothing listens
    const dir = join(tmpdir(), "x".repeat(120));
    let err = "";
    const code = await main(["status", "--instance", "uxcli", "--run-dir", dir], { out: () => undefined, err: (t) => void (err += t) }, {});
    expect(code).toBe(1);
    expect(err).toStartWith(`tidegate status: cannot reach the agent at ${JSON.stringify(join(dir, "agent.sock"))}: `);
    expect(err).toEndWith(" [agent_status_failed]\n");
    expect(err).not.toContain("not running");
  });
});
