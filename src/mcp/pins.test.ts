import { assert, describe, test } from "../../test/shim.ts";
import { MAX_TOOLS_PER_SERVER, PinBook } from "./pins.ts";

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
});
