// in-flight.ts: each connection recorded once, an early end recorded with its reason, and a
// recorded connection's state let go of.
import { describe, expect, test } from "bun:test";
import type { ConnAudit } from "./conn-audit.ts";
import { connectionsClosed, InFlight } from "./in-flight.ts";

/** A ConnAudit that keeps what `close` was given. */
function events(closed: Record<string, unknown>[]): ConnAudit {
  return { open() {}, close: (f) => void closed.push({ ...f }), connId: () => "id" };
}

describe("InFlight", () => {
  test("a connection is recorded once; a second close is ignored", () => {
    const closed: Record<string, unknown>[] = [];
    const f = new InFlight();
    const t = f.open(events(closed), () => {});
    expect(f.size).toBe(1);
    t.events.close({ outcome: "forwarded" });
    t.events.close({ outcome: "again" });
    expect(closed).toEqual([{ outcome: "forwarded" }]);
    expect(f.size).toBe(0);
  });

  test("connectionsClosed counts each recorded connection once, over every InFlight of the process (the heap governor's churn)", () => {
    const before = connectionsClosed();
    const [a, b] = [new InFlight(), new InFlight()];
    const ta = a.open(events([]), () => {});
    const tb = b.open(events([]), () => {});
    b.open(events([]), () => {}); // still open: not counted
    ta.events.close({ outcome: "forwarded" });
    ta.events.close({ outcome: "again" });
    expect(connectionsClosed()).toBe(before + 1);
    b.end(tb, { outcome: "terminated" });
    expect(connectionsClosed()).toBe(before + 2);
  });

  test("end: one not forwarding is recorded with what is known and reset; one forwarding is cut by its path, its reason over the path's fields", () => {
    const closed: Record<string, unknown>[] = [];
    const f = new InFlight();
    let resets = 0;
    const early = f.open(events(closed), () => void resets++);
    early.fields = { pid: 7 };
    expect(f.end(early, { outcome: "terminated", reason: "idle_timeout" })).toBe(true);
    expect(resets).toBe(1);
    const forwarding = f.open(events(closed), () => void resets++);
    forwarding.control = { drain() {}, cut: () => forwarding.events.close({ outcome: "forwarded", bytes_up: 3 }) };
    expect(f.end(forwarding, { outcome: "terminated", reason: "drain_deadline" })).toBe(true);
    expect(resets).toBe(1);
    expect(closed).toEqual([{ pid: 7, outcome: "terminated", reason: "idle_timeout" }, { outcome: "terminated", bytes_up: 3, reason: "drain_deadline" }]);
    expect(f.end(forwarding, { outcome: "terminated" })).toBe(false);
  });

  test("once recorded, its control and fields are let go of", async () => {
    const f = new InFlight();
    const t = f.open(events([]), () => {});
    const refs = ((): WeakRef<object>[] => {
      const control = { drain() {}, cut() {} };
      const fields = { pid: 7, state: {} };
      t.control = control;
      t.fields = fields;
      return [new WeakRef(control), new WeakRef(fields)];
    })();
    t.events.close({ outcome: "closed" });
    expect(t.control).toBeNull();
    expect(t.fields).toEqual({});
    await Bun.sleep(0);
    Bun.gc(true);
    await Bun.sleep(0);
    Bun.gc(true);
    expect(refs.map((r) => r.deref() === undefined)).toEqual([true, true]);
    expect(f.end(t, { outcome: "terminated" })).toBe(false); // recorded: nothing more
  });
  test("recheck: each connection whose check gives a reason is ended with it; one that holds, one without a check, one whose check throws, and one recorded meanwhile are left", async () => {
    const closed: Record<string, unknown>[] = [];
    const f = new InFlight();
    const forwarding = (check: (() => Record<string, unknown> | null | Promise<Record<string, unknown> | null>) | null) => {
      const t = f.open(events(closed), () => {});
      t.control = { drain() {}, cut: () => t.events.close({ outcome: "forwarded" }) };
      t.recheck = check;
      return t;
    };
    forwarding(() => ({ outcome: "terminated", reason: "policy_changed" }));
    forwarding(async () => ({ outcome: "terminated", reason: "identity_revoked" }));
    forwarding(() => null);
    forwarding(null);
    forwarding(() => {
      throw new Error("check broke");
    });
    const late = forwarding(async () => {
      late.events.close({ outcome: "forwarded", detail: "ended on its own meanwhile" });
      return { outcome: "terminated", reason: "policy_changed" };
    });
    expect(await f.recheck()).toEqual({ cut: 2, failed: 1, error: "check broke" });
    expect(closed).toEqual([
      { outcome: "forwarded", detail: "ended on its own meanwhile" },
      { outcome: "terminated", reason: "policy_changed" },
      { outcome: "terminated", reason: "identity_revoked" },
    ]);
    expect(f.size).toBe(3);
    expect(await f.recheck()).toEqual({ cut: 0, failed: 1, error: "check broke" });
  });
});
