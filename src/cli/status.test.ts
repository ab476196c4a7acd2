import { describe, expect, test } from "bun:test";
import { renderStatus } from "./status.ts";
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
          workloads: ["client"],
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
    expect(out).toContain("workloads      client\n");
    expect(out).toContain("inbound listeners (2)\n  mcp-in on 0.0.0.0:8443 as spiffe://example.org/mcp: listening\n  db-in on 127.0.0.1:8444 as spiffe://example.org/db: failed (EADDRINUSE)\n");
    expect(renderStatus({ ...status, capture: { unavailable: "the agent runs without capture (--no-capture)" } }, NOW)).toContain("capture        off: the agent runs without capture (--no-capture)\n");
  });
});
