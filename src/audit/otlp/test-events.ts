/**
 * Audit events for the OTLP tests, built here rather than with ../format (a line is the JSON of
 * seq, time, type, the fields and prev, which is all the mapping looks at).
 */
import type { ParsedEvent } from "./encode.ts";

export const ZERO_PREV = "0".repeat(64);

export function event(seq: number, type: string, fields: Record<string, unknown> = {}, time = "2026-11-26T17:00:00.123Z"): ParsedEvent {
  const line = JSON.stringify({ seq, time, type, ...fields, prev: ZERO_PREV });
  return { seq, time, type, fields, line };
}

export const CONN_OPEN = event(7, "conn_open", {
  instance: "node-a",
  conn_id: "c-1",
  side: "egress",
  src: { spiffe_id: null, pid: 4242, uid: 1000, cgroup_id: null, workload: "agent", exe: "/usr/bin/curl", peer: "10.0.0.2:40000" },
  dst: { addr: "93.184.216.34", port: 443, name: "example.com" },
  decision: "allow",
  rule: "web",
  action: null,
});

export const DENY = event(8, "deny", { side: "egress", conn_id: null, src: {}, dst: { addr: "10.1.1.1", port: 22, name: null }, rule: null, reason: "no_rule", ratio: 0.5 }, "2026-11-26T17:00:01Z");
