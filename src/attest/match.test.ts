// Portable style: the shared test shim, so these run under Deno too (match.ts is web-standard).
import { assert, describe, test } from "../../test/shim.ts";
import { matchEntry, nearMisses, type MatchEntry } from "./match.ts";
import { AttestError } from "./errors.ts";

const e = (id: string, ...selectors: string[]): MatchEntry => ({ id, spiffe_id: `spiffe://td/${id}`, selectors });
const have = ["unix:uid:1000", "unix:user:alice", "unix:path:/usr/bin/node", "cgroup:path:/x"];

describe("matchEntry", () => {
  test("an entry matches when all its selectors are present", () => {
    assert.equal(matchEntry([e("a", "unix:uid:1000", "unix:path:/usr/bin/node")], have)?.id, "a");
  });
  test("one missing selector: no match (null, no identity)", () => {
    assert.equal(matchEntry([e("a", "unix:uid:1000", "unix:uid:0")], have), null);
  });
  test("no entries: null", () => assert.equal(matchEntry([], have), null));
  test("an entry with no selectors matches nothing", () => assert.equal(matchEntry([e("a")], have), null));
  test("the most selectors wins", () => {
    const entries = [e("one", "unix:uid:1000"), e("three", "unix:uid:1000", "unix:user:alice", "cgroup:path:/x"), e("two", "unix:uid:1000", "unix:user:alice")];
    assert.equal(matchEntry(entries, have)?.id, "three");
  });
  test("a repeated selector counts once", () => {
    const entries = [e("dup", "unix:uid:1000", "unix:uid:1000", "unix:uid:1000"), e("two", "unix:uid:1000", "unix:user:alice")];
    assert.equal(matchEntry(entries, have)?.id, "two");
  });
  test("a tie at the top is attest_ambiguous naming the entries", () => {
    const entries = [e("x", "unix:uid:1000"), e("a", "unix:uid:1000", "unix:user:alice"), e("b", "unix:uid:1000", "cgroup:path:/x")];
    assert.throws(
      () => matchEntry(entries, have),
      (err: unknown) => err instanceof AttestError && err.code === "attest_ambiguous" && err.message.includes("a (spiffe://td/a)") && err.message.includes("b (spiffe://td/b)") && !err.message.includes("x ("),
    );
  });
  test("a tie below a single winner is no error", () => {
    const entries = [e("a", "unix:uid:1000"), e("b", "cgroup:path:/x"), e("top", "unix:uid:1000", "cgroup:path:/x")];
    assert.equal(matchEntry(entries, have)?.id, "top");
  });
  test("selectors are compared exactly (no prefix, no case folding)", () => {
    assert.equal(matchEntry([e("a", "unix:uid:100")], have), null);
    assert.equal(matchEntry([e("a", "UNIX:uid:1000")], have), null);
  });
});

describe("nearMisses", () => {
  test("entries missing exactly one selector, with which one", () => {
    const entries = [e("ok", "unix:uid:1000"), e("one", "unix:uid:1000", "unix:uid:0"), e("two", "unix:uid:0", "unix:gid:0"), e("dup", "unix:gid:5", "unix:gid:5")];
    const got = nearMisses(entries, have).map((m) => [m.entry.id, m.missing]);
    assert.deepEqual(got, [
      ["one", "unix:uid:0"],
      ["dup", "unix:gid:5"],
    ]);
  });
});
