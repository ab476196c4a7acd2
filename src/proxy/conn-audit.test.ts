// The shape of a connection's audit events from the listeners' flat fields, checked against the
// event schema by memoryAudit as they are emitted.
import { describe, expect, test } from "bun:test";
import { memoryAudit } from "../audit/sink/memory-audit.ts";
import { connAudit } from "./conn-audit.ts";

describe("connAudit", () => {
  test("egress: open then close with the same conn_id, src, dst, decision and rule", () => {
    const a = memoryAudit();
    const c = connAudit(a, "egress");
    const f = { peer: "127.0.0.1:40000", pid: 7, uid: 1000, cgroup_id: "42", workload: "w", spiffe_id: "spiffe://example.org/w", dst: "10.0.0.1", dst_port: 443, name: "api.test", decision: "allow", rule: "r", action: "tls" };
    c.open({ ...f, conn_id: "ab".repeat(16), upstream: "10.0.0.1:443" });
    c.close({ ...f, outcome: "forwarded", bytes_up: 10, bytes_down: 20, upstream: "10.0.0.1:443" });
    const [open, close] = a.events;
    expect(open).toMatchObject({ type: "conn_open", conn_id: "ab".repeat(16), side: "egress", src: { pid: 7, workload: "w", peer: "127.0.0.1:40000" }, dst: { addr: "10.0.0.1", port: 443, name: "api.test" }, decision: "allow", rule: "r", action: "tls" });
    expect(close).toMatchObject({ type: "conn_close", conn_id: "ab".repeat(16), decision: "allow", rule: "r", outcome: "forwarded", bytes_up: 10, bytes_down: 20, upstream: "10.0.0.1:443" });
  });

  test("nothing decided (no identity): both events, decision deny; an empty or null detail is left out, a long one cut", () => {
    const a = memoryAudit();
    connAudit(a, "egress").close({ outcome: "refused", reason: "no_record", detail: "", claimed_id: null });
    connAudit(a, "egress").close({ outcome: "refused", reason: "x", detail: "e".repeat(5000) });
    expect(a.events.map((e) => [e.type, e.decision])).toEqual([
      ["conn_open", "deny"],
      ["conn_close", "deny"],
      ["conn_open", "deny"],
      ["conn_close", "deny"],
    ]);
    expect("detail" in a.events[1]!).toBe(false);
    expect("claimed_id" in a.events[1]!).toBe(false);
    expect(String(a.events[3]!.detail).length).toBe(1003);
  });

  test("inbound: the verified client is src.spiffe_id, the listen address is dst; refused means deny", () => {
    const a = memoryAudit();
    connAudit(a, "inbound").close({ rule: "in", listen: "[::1]:8443", client: "[::1]:5000", client_id: "spiffe://example.org/c", outcome: "forwarded", bytes_up: 1, bytes_down: 2 });
    connAudit(a, "inbound").close({ rule: "in", listen: "127.0.0.1:8443", client: "127.0.0.1:5001", client_id: null, outcome: "refused", reason: "client_untrusted" });
    expect(a.of("conn_close")).toMatchObject([
      { side: "inbound", decision: "allow", src: { spiffe_id: "spiffe://example.org/c", peer: "[::1]:5000" }, dst: { addr: "::1", port: 8443 } },
      { side: "inbound", decision: "deny", src: { spiffe_id: null }, reason: "client_untrusted" },
    ]);
  });
});
