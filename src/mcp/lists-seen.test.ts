import { assert, describe, test } from "../../test/shim.ts";
import { ListsSeen, SessionLists } from "./lists-seen.ts";

const A = "spiffe://example.org/agent";
const B = "spiffe://example.org/other";
const S = "spiffe://example.org/mcp/fs";

describe("SessionLists", () => {
  test("one record per (caller, server, session): joined twice, the same; another caller, server or session, another", () => {
    const s = new SessionLists();
    const one = s.join(A, S, "sess-1")!;
    const again = s.join(A, S, "sess-1")!;
    assert.equal(again.seen, one.seen);
    assert.ok(one.seen instanceof ListsSeen);
    for (const [caller, server, session] of [[B, S, "sess-1"], [A, B, "sess-1"], [A, S, "sess-2"], [A, S, ""]] as const) {
      assert.notEqual(s.join(caller, server, session)!.seen, one.seen, `${caller} ${server} ${JSON.stringify(session)}`);
    }
    assert.equal(s.size, 5);
  });

  test("a record lives while a holder holds it: the last release drops it, and a release twice counts once", () => {
    const s = new SessionLists();
    const one = s.join(A, S, "x")!;
    const two = s.join(A, S, "x")!;
    one.seen.listed.set("tools", "deny rm");
    one.release();
    one.release();
    assert.equal(s.size, 1, "the second holder still holds it");
    assert.equal(s.join(A, S, "x")!.seen, two.seen);
    two.release();
    assert.equal(s.size, 1, "the third join still holds it");
  });

  test("released by all, the next join starts a fresh record", () => {
    const s = new SessionLists();
    const one = s.join(A, S, "x")!;
    one.seen.listed.set("tools", "deny rm");
    one.release();
    assert.equal(s.size, 0);
    assert.equal(s.join(A, S, "x")!.seen.listed.size, 0);
  });

  test("refused (null): a session ID that is not 1-256 visible ASCII characters, and a join past the bound", () => {
    const s = new SessionLists(2);
    for (const bad of ["has space", "tab\there", "é", "x".repeat(257), "nul\0"]) assert.equal(s.join(A, S, bad), null, JSON.stringify(bad));
    assert.notEqual(s.join(A, S, "x".repeat(256)), null);
    assert.notEqual(s.join(A, S, "y"), null);
    assert.equal(s.join(A, S, "z"), null, "two records held: the bound");
    assert.notEqual(s.join(A, S, "y"), null, "a record held is still joined past the bound");
  });
});

describe("SessionLists: a record no connection holds waits for its client to resume", () => {
  /** Timers the test fires by hand. */
  function manual() {
    const armed = new Map<number, { fn: () => void; ms: number }>();
    let next = 1;
    return {
      armed,
      timers: { set: (fn: () => void, ms: number) => (armed.set(next, { fn, ms }), next++), clear: (h: unknown) => void armed.delete(h as number) },
      fire() {
        const all = [...armed.values()];
        armed.clear();
        for (const t of all) t.fn();
      },
    };
  }
  /** A call the record awaits, counting how it ends. */
  const awaiting = (seen: ListsSeen, id: number) => {
    const ends = { answered: 0, unanswered: 0 };
    seen.awaited.set(id, { answered: () => void ends.answered++, unanswered: () => void ends.unanswered++ });
    return ends;
  };

  test("released while it awaits a call: it lingers for the window, and then logs the call without an answer", () => {
    const t = manual();
    const s = new SessionLists(10, 30_000, t.timers);
    const one = s.join(A, S, "x")!;
    const call = awaiting(one.seen, 1);
    one.release();
    assert.deepEqual([s.size, s.waiting, call.unanswered, [...t.armed.values()].map((a) => a.ms)], [1, 1, 0, [30_000]]);
    t.fire();
    assert.deepEqual([s.size, s.waiting, call.unanswered, call.answered], [0, 0, 1, 0]);
    assert.equal(s.join(A, S, "x")!.seen.awaited.size, 0, "a join after the window starts afresh");
  });

  test("joined again within the window: the same record, with the call it awaits, and no timer left", () => {
    const t = manual();
    const s = new SessionLists(10, 30_000, t.timers);
    const one = s.join(A, S, "x")!;
    const call = awaiting(one.seen, 1);
    one.release();
    const back = s.join(A, S, "x")!;
    assert.equal(back.seen, one.seen);
    assert.deepEqual([s.waiting, t.armed.size, call.unanswered], [0, 0, 0]);
    back.seen.awaited.get(1)!.answered(false);
    assert.equal(call.answered, 1);
    back.seen.awaited.delete(1);
    back.release();
    assert.deepEqual([s.size, t.armed.size], [0, 0], "nothing awaited: it ends at once");
  });

  test("close ends what lingers, logging its calls, and refuses every join after", () => {
    const t = manual();
    const s = new SessionLists(10, 30_000, t.timers);
    const one = s.join(A, S, "x")!;
    const held = s.join(A, S, "y")!;
    const lingering = awaiting(one.seen, 1);
    const open = awaiting(held.seen, 2);
    one.release();
    s.close();
    assert.deepEqual([lingering.unanswered, open.unanswered, t.armed.size, s.size], [1, 0, 0, 1]);
    assert.equal(s.join(A, S, "z"), null);
    held.release();
    assert.deepEqual([open.unanswered, s.size, t.armed.size], [1, 0, 0], "released after close: logged at once, no timer");
  });

  test("at the bound a lingering record makes room (the one that began first, its calls logged); held ones never do", () => {
    const t = manual();
    const s = new SessionLists(2, 30_000, t.timers);
    const first = s.join(A, S, "a")!;
    const second = s.join(A, S, "b")!;
    const c1 = awaiting(first.seen, 1);
    const c2 = awaiting(second.seen, 2);
    first.release();
    second.release();
    assert.notEqual(s.join(A, S, "c"), null);
    assert.deepEqual([c1.unanswered, c2.unanswered, s.size, s.waiting], [1, 0, 2, 1]);
    assert.notEqual(s.join(A, S, "d"), null);
    assert.deepEqual([c2.unanswered, s.size, s.waiting, t.armed.size], [1, 2, 0, 0]);
    assert.equal(s.join(A, S, "e"), null, "both records held: the bound");
  });
});
