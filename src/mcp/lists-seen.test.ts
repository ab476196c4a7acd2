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
