import { assert, describe, test } from "../../test/shim.ts";
import { MAX_DEFINITION_CHARS, MAX_DEFINITIONS_CHARS, MAX_TOOLS_PER_SERVER, PinBook } from "./pins.ts";

const H = (c: string) => c.repeat(64);

describe("PinBook", () => {
  test("first sight pins, the same hash stays pinned, another waits (news once)", () => {
    const b = new PinBook();
    assert.deepEqual(b.see("s", "t", H("a")), { state: "pinned", first: true });
    assert.deepEqual(b.see("s", "t", H("a")), { state: "pinned", first: false });
    assert.deepEqual(b.see("s", "t", H("b")), { state: "changed", old: H("a"), news: true });
    assert.deepEqual(b.see("s", "t", H("b")), { state: "changed", old: H("a"), news: false });
    assert.equal(b.waiting("s", "t"), true);
    assert.equal(b.waiting("other", "t"), false);
  });

  test("a server changing back to the pinned definition stops waiting", () => {
    const b = new PinBook();
    b.see("s", "t", H("a"));
    b.see("s", "t", H("b"));
    assert.equal(b.see("s", "t", H("a")).state, "pinned");
    assert.equal(b.waiting("s", "t"), false);
  });

  test("approve pins the waiting hash, one tool or all; unknown ones approve nothing", () => {
    const b = new PinBook();
    for (const t of ["x", "y"]) b.see("s", t, H("a"));
    for (const t of ["x", "y"]) b.see("s", t, H("b"));
    assert.deepEqual(b.approve("s", "x"), ["x"]);
    assert.deepEqual(b.show("s"), { pinned: { x: H("b"), y: H("a") }, waiting: { y: H("b") }, strict: false });
    assert.deepEqual(b.approve("s"), ["y"]);
    assert.deepEqual(b.approve("s", "nope"), []);
    assert.deepEqual(b.approve("unknown"), []);
  });

  test("approve with a hash pins only when the waiting hash is that one", () => {
    const b = new PinBook();
    b.see("s", "t", H("a"));
    b.see("s", "t", H("b"));
    assert.deepEqual(b.approve("s", "t", H("c")), []);
    assert.equal(b.waiting("s", "t"), true);
    assert.deepEqual(b.approve("s", "t", H("b")), ["t"]);
    assert.equal(b.waiting("s", "t"), false);
  });

  test("a server loaded from an approved file is strict: an unnamed tool waits", () => {
    const b = new PinBook();
    b.load("s", new Map([["x", H("a")]]));
    assert.deepEqual(b.see("s", "x", H("a")), { state: "pinned", first: false });
    assert.deepEqual(b.see("s", "new", H("c")), { state: "changed", old: null, news: true });
  });

  test("under a strict server, a tool the file does not name is refused before any list showed it (a tool the server never lists)", () => {
    const b = new PinBook();
    b.load("s", new Map([["x", H("a")]]));
    assert.deepEqual([b.waiting("s", "x"), b.waiting("s", "hidden"), b.waiting("other", "hidden")], [false, true, false]);
  });

  test("onChange fires on every change and not otherwise", () => {
    const b = new PinBook();
    let n = 0;
    b.onChange = () => void n++;
    b.see("s", "t", H("a"));
    b.see("s", "t", H("a"));
    b.see("s", "t", H("b"));
    b.see("s", "t", H("b"));
    b.approve("s");
    assert.equal(n, 3);
  });

  test("toJSON and fromJSON round trip", () => {
    const b = new PinBook();
    b.see("s2", "t", H("a"));
    b.see("s2", "t", H("b"));
    b.load("s1", new Map([["u", H("c")]]));
    const back = PinBook.fromJSON(JSON.parse(JSON.stringify(b)));
    assert.deepEqual(back.toJSON(), b.toJSON());
    assert.deepEqual(Object.keys(back.toJSON()), ["s1", "s2"]);
  });

  const bad: [string, unknown, RegExp][] = [
    ["not an object", [], /not an object/],
    ["a server of the wrong shape", { s: { pinned: {} } }, /server "s"/],
    ["a hash that is not hex", { s: { pinned: { t: "zz" }, waiting: {}, strict: false } }, /pinned hash of "t"/],
    ["an upper-case hash", { s: { pinned: {}, waiting: { t: H("A") }, strict: false } }, /waiting hash of "t"/],
  ];
  for (const [name, data, msg] of bad) test(`fromJSON refuses ${name}`, () => assert.throws(() => PinBook.fromJSON(data), msg));
});

describe("PinBook bounds (review finding 10)", () => {
  test("a server cycling between two definitions is announced once per hash, not at every list", () => {
    const b = new PinBook();
    b.see("s", "t", H("a"));
    const news = [];
    for (let i = 0; i < 6; i++) news.push((b.see("s", "t", i % 2 === 0 ? H("b") : H("a")) as { news?: boolean }).news ?? "pinned");
    assert.deepEqual(news, [true, "pinned", false, "pinned", false, "pinned"]);
  });
  test(`over ${MAX_TOOLS_PER_SERVER} tools, the others are refused and not recorded`, () => {
    const b = new PinBook();
    for (let i = 0; i < MAX_TOOLS_PER_SERVER; i++) b.see("s", `t${i}`, H("a"));
    assert.deepEqual(b.see("s", "one-more", H("a")), { state: "changed", old: null, news: false });
    assert.equal(b.waiting("s", "one-more"), true);
    assert.equal(Object.keys(b.show("s")!.pinned).length, MAX_TOOLS_PER_SERVER);
    assert.equal(b.see("s", "t0", H("a")).state, "pinned", "known tools go on as before");
  });

  test("at the bound, a server's new tool names are not kept one by one (they would grow without end): each is refused all the same", () => {
    const b = new PinBook();
    for (let i = 0; i < MAX_TOOLS_PER_SERVER; i++) b.see("s", `t${i}`, H("a"));
    for (let i = 0; i < 5000; i++) b.see("s", `flood${i}`, H("a"));
    assert.equal((b as unknown as { overflow?: Set<string> }).overflow?.size ?? 0, 0);
    assert.deepEqual([b.waiting("s", "flood1"), b.waiting("s", "never-listed"), b.waiting("s", "t1"), b.waiting("other", "x")], [true, true, false, false]);
  });

});

describe("PinBook definitions (shown to an admin before approving)", () => {
  test("entry: a tool's pinned and waiting hashes with the definitions it was shown; unknown ones are null", () => {
    const b = new PinBook();
    assert.equal(b.entry("s", "t"), null);
    b.see("s", "t", H("a"), '{"d":"old"}');
    assert.deepEqual(b.entry("s", "t"), { pinned: { hash: H("a"), definition: '{"d":"old"}' }, waiting: null });
    b.see("s", "t", H("b"), '{"d":"new"}');
    assert.deepEqual(b.entry("s", "t"), { pinned: { hash: H("a"), definition: '{"d":"old"}' }, waiting: { hash: H("b"), definition: '{"d":"new"}' } });
    assert.equal(b.entry("s", "other"), null);
    assert.equal(b.entry("other", "t"), null);
  });

  test("definitions are not in toJSON (the pins) but in definitionsJSON; a book read back takes back those of live hashes", () => {
    const b = new PinBook();
    let told = 0;
    b.onDefinitionsChange = () => told++;
    b.see("s", "t", H("a"), '{"d":"old"}');
    assert.equal(told, 1);
    assert.equal(JSON.stringify(b).includes("old"), false);
    assert.deepEqual(b.definitionsJSON(), { [H("a")]: '{"d":"old"}' });
    const back = PinBook.fromJSON(JSON.parse(JSON.stringify(b)));
    assert.deepEqual(back.entry("s", "t"), { pinned: { hash: H("a"), definition: null }, waiting: null });
    back.restoreDefinitions(new Map([[H("a"), '{"d":"old"}'], [H("9"), "pinned nowhere"]]));
    assert.deepEqual(back.entry("s", "t")!.pinned, { hash: H("a"), definition: '{"d":"old"}' });
    assert.deepEqual(back.definitionsJSON(), { [H("a")]: '{"d":"old"}' });
    const fresh = PinBook.fromJSON(JSON.parse(JSON.stringify(b)));
    fresh.see("s", "t", H("a"), '{"d":"old"}'); // or the server lists it again
    assert.deepEqual(fresh.entry("s", "t")!.pinned, { hash: H("a"), definition: '{"d":"old"}' });
  });

  test("load keeps the approved file's definitions of the hashes it pins, and no other", () => {
    const b = new PinBook();
    b.load("s", new Map([["t", H("a")]]), new Map([[H("a"), "A"], [H("b"), "B, pinned by nothing"]]));
    assert.deepEqual(b.entry("s", "t"), { pinned: { hash: H("a"), definition: "A" }, waiting: null });
    assert.deepEqual(b.definitionsJSON(), { [H("a")]: "A" });
  });

  test("onDefinitionsChange: told when one is kept or let go, not when nothing moved", () => {
    const b = new PinBook();
    let told = 0;
    b.onDefinitionsChange = () => told++;
    b.see("s", "t", H("a"), "A");
    b.see("s", "t", H("a"), "A");
    assert.equal(told, 1);
    b.see("s", "t", H("b"), "B");
    assert.equal(told, 2);
    b.approve("s", "t"); // A let go
    assert.equal(told, 3);
    b.see("s", "u", H("c")); // no definition given
    assert.equal(told, 3);
  });

  test("a definition no longer pinned or waiting anywhere is let go; one another server still pins is kept", () => {
    const b = new PinBook();
    b.see("s", "t", H("a"), "A");
    b.see("s2", "t", H("a"), "A");
    b.see("s", "t", H("b"), "B");
    b.see("s", "t", H("c"), "C"); // replaces the waiting B
    assert.deepEqual(b.entry("s", "t")!.waiting, { hash: H("c"), definition: "C" });
    b.see("s", "t", H("b"), "B"); // B again: known again, as it is shown again
    assert.equal(b.entry("s", "t")!.waiting!.definition, "B");
    b.approve("s", "t"); // s now pins B; A stays for s2
    assert.deepEqual(b.entry("s", "t"), { pinned: { hash: H("b"), definition: "B" }, waiting: null });
    assert.deepEqual(b.entry("s2", "t")!.pinned, { hash: H("a"), definition: "A" });
    b.load("s2", new Map([["t", H("d")]])); // nothing pins A now
    b.see("s3", "t", H("a")); // pinned again without a definition: A was let go
    assert.deepEqual(b.entry("s3", "t")!.pinned, { hash: H("a"), definition: null });
  });

  test(`a definition over ${MAX_DEFINITION_CHARS} characters, or past ${MAX_DEFINITIONS_CHARS} in all, is known by its hash alone`, () => {
    const b = new PinBook();
    b.see("s", "big", H("a"), "x".repeat(MAX_DEFINITION_CHARS + 1));
    assert.deepEqual(b.entry("s", "big")!.pinned, { hash: H("a"), definition: null });
    const fill = MAX_DEFINITIONS_CHARS / MAX_DEFINITION_CHARS;
    for (let i = 0; i < fill; i++) b.see("s", `t${i}`, i.toString(16).padStart(64, "0"), "y".repeat(MAX_DEFINITION_CHARS));
    assert.equal(b.entry("s", "t0")!.pinned!.definition!.length, MAX_DEFINITION_CHARS);
    b.see("s", "one-more", H("f"), "z");
    assert.deepEqual(b.entry("s", "one-more")!.pinned, { hash: H("f"), definition: null });
    b.see("s", "t0", H("e")); // t0 waits now; its pinned one is still live, so nothing is freed
    b.approve("s", "t0"); // the old t0 definition is let go: room for one more
    b.see("s", "another", H("9"), "w");
    assert.equal(b.entry("s", "another")!.pinned!.definition, "w");
  });
});
